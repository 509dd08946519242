"""Seeded fault injection: the same seed and request sequence give the same faults."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from sandbox.executor import OPERATIONS

PRE_KINDS = ("reset", "http_500", "http_502", "http_503", "http_429", "internal_error")
RETRY_AFTER_FORMATS = ("seconds", "date", "mixed")


@dataclass
class FaultConfig:
    """Every knob; rates are fractions 0..1 of requests whose operation is in `operations`."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    latency_spike_rate: float = 0.0
    latency_spike_ms: float = 0.0
    reset_rate: float = 0.0
    http_500_rate: float = 0.0
    http_502_rate: float = 0.0
    http_503_rate: float = 0.0
    http_429_rate: float = 0.0
    retry_after_s: int = 1
    retry_after_format: str = "seconds"
    internal_error_rate: float = 0.0
    hold_rate: float = 0.0
    hold_s: float = 30.0
    malformed_json_rate: float = 0.0
    rate_limit_rps: float = 0.0
    rate_limit_burst: int = 20
    pdf_never_rate: float = 0.0
    pdf_delay_min_s: float = 0.2
    pdf_delay_max_s: float = 2.0
    operations: list[str] = field(default_factory=lambda: list(OPERATIONS))

    def validate(self) -> None:
        """Raise ValueError naming the first knob with an impossible value."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be within 0..1, got {value}")
            if isinstance(value, int | float) and value < 0:
                raise ValueError(f"{f.name} must not be negative, got {value}")
        if self.retry_after_format not in RETRY_AFTER_FORMATS:
            raise ValueError(f"retry_after_format must be one of {RETRY_AFTER_FORMATS}")
        if self.pdf_delay_min_s > self.pdf_delay_max_s:
            raise ValueError("pdf_delay_min_s must not exceed pdf_delay_max_s")
        unknown = set(self.operations) - set(OPERATIONS)
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)}; known: {OPERATIONS}")

    def updated(self, changes: Mapping[str, Any]) -> FaultConfig:
        """A validated copy with `changes` applied; numbers given as strings are converted."""
        known = {f.name: f for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for name, raw in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault knob {name!r}")
            current = getattr(self, name)
            values[name] = _convert(name, raw, current)
        config = dataclasses.replace(self, **values)
        config.validate()
        return config

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _convert(name: str, raw: Any, current: Any) -> Any:
    try:
        if isinstance(current, list):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return [str(i).strip() for i in items if str(i).strip()]
        if isinstance(current, bool):
            return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad value for {name}: {raw!r}") from exc


@dataclass(frozen=True)
class Decision:
    """What to do to one request: wait, then fail before (`pre`) or after (`post`) executing."""

    delay_s: float = 0.0
    pre: str | None = None  # one of PRE_KINDS
    post: str | None = None  # "hold" | "malformed"
    retry_after: str | None = None


NO_FAULT = Decision()


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; rate 0 means unlimited."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class FaultController:
    """Owns the fault configuration and the seeded random streams that realise it."""

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seed = seed
        self.config = config or FaultConfig()
        self.config.validate()
        self._clock = clock
        self._reseed(seed)

    def _reseed(self, seed: int) -> None:
        self.seed = seed
        self._requests = random.Random(f"faults:{seed}")
        self._pdfs = random.Random(f"pdf:{seed}")
        self._refill_bucket()

    def _refill_bucket(self) -> None:
        self.bucket = TokenBucket(
            self.config.rate_limit_rps, self.config.rate_limit_burst, self._clock
        )

    def configure(self, **changes: Any) -> FaultConfig:
        """Change knobs at runtime (validated; unknown names raise ValueError)."""
        self.config = self.config.updated(changes)
        if {"rate_limit_rps", "rate_limit_burst"} & changes.keys():
            self._refill_bucket()
        return self.config

    def reset(self, seed: int | None = None) -> FaultConfig:
        """No faults again, and restart the random streams (from `seed` if given)."""
        self.config = FaultConfig()
        self._reseed(self.seed if seed is None else seed)
        return self.config

    def in_scope(self, operation: str) -> bool:
        return operation in self.config.operations

    def decide(self, operation: str) -> Decision:
        """Draw this request's fate; always four draws, so sequences stay aligned."""
        if not self.in_scope(operation):
            return NO_FAULT
        c = self.config
        rng = self._requests
        u_pre, u_post, u_jitter, u_spike = rng.random(), rng.random(), rng.random(), rng.random()
        delay_ms = c.latency_ms + u_jitter * c.latency_jitter_ms
        if u_spike < c.latency_spike_rate:
            delay_ms += c.latency_spike_ms
        pre = _pick(u_pre, [(kind, getattr(c, f"{kind}_rate")) for kind in PRE_KINDS])
        post = (
            None
            if pre
            else _pick(u_post, [("hold", c.hold_rate), ("malformed", c.malformed_json_rate)])
        )
        retry_after = self.retry_after(u_post) if pre == "http_429" else None
        return Decision(delay_ms / 1000.0, pre, post, retry_after)

    def retry_after(self, draw: float) -> str:
        """Retry-After as delta-seconds or as an HTTP date ("mixed": chosen by `draw`)."""
        fmt = self.config.retry_after_format
        if fmt == "mixed":
            fmt = "date" if draw < 0.5 else "seconds"
        if fmt == "date":
            return formatdate(time.time() + self.config.retry_after_s, usegmt=True)
        return str(self.config.retry_after_s)

    def pdf_delay(self) -> float | None:
        """Seconds until a new invoice's PDF appears; None: it never does."""
        never, delay = self._pdfs.random(), self._pdfs.random()
        if never < self.config.pdf_never_rate:
            return None
        c = self.config
        return c.pdf_delay_min_s + delay * (c.pdf_delay_max_s - c.pdf_delay_min_s)


def _pick(draw: float, bands: list[tuple[str, float]]) -> str | None:
    edge = 0.0
    for kind, rate in bands:
        edge += rate
        if draw < edge:
            return kind
    return None
