"""The circuit: a systemic failure pauses consumption, a probe with backoff resumes it.

UNAUTHORIZED/FORBIDDEN from Afosto, or failures sustained for a while, would otherwise burn
every message's retries into the dead-letter queue; paused, the messages wait in their queues.
An output the broker returns as unroutable (nobody bound a queue to the output exchange yet)
pauses the same way. AMQP cannot ask whether a publish would route without making it, so
that pause has no probe: consumption resumes after a wait, the next delivery tries for real,
and each pause in a row waits twice as long (up to `probe_max`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
    wait_exponential_jitter,
)

from consumer.metrics import Metrics

log = logging.getLogger(__name__)

PauseReason = Literal["unauthorized", "forbidden", "api_down", "output_unroutable"]
Probe = Callable[[], Awaitable[None]]
"""One cheap authenticated Afosto call; returns when the API answers normally, raises otherwise."""


class Pausable(Protocol):
    async def pause(self) -> None:
        """Stop taking deliveries (cancel the consumers); deliveries in flight finish."""

    async def resume(self) -> None:
        """Take deliveries again on every queue."""


@dataclass(frozen=True)
class CircuitConfig:
    api_down_after: float = 30.0  # consecutive failures for this long open the circuit
    api_down_min_failures: int = 5
    probe_initial: float = 1.0
    probe_max: float = 60.0
    probe_timeout: float = 30.0  # a probe that hangs is a failed probe


class Circuit:
    """Opens on a systemic failure, then pauses, probes and resumes in one task of its own."""

    def __init__(
        self,
        *,
        consumers: Pausable,
        probe: Probe,
        metrics: Metrics,
        config: CircuitConfig,
        lock: asyncio.Lock,
        spawn: Callable[[Awaitable[None]], None],
        before_pause: Callable[[], object] = lambda: None,
    ) -> None:
        self._consumers = consumers
        self._probe = probe
        self._metrics = metrics
        self._config = config
        self._lock = lock  # shared with re-subscribing: they never interleave
        self._spawn = spawn
        self._before_pause = before_pause
        self.open_reason: PauseReason | None = None
        self.paused = False
        self._failing_since: float | None = None
        self._failures = 0
        self._unroutable_pauses = 0  # in a row: each waits twice as long
        self._unroutable_resumed_at = float("-inf")

    def open(self, reason: PauseReason, detail: str = "") -> None:
        """Open the circuit (idempotent): pause consumers until a probe says Afosto recovered
        (for an unroutable output: until a growing wait has passed)."""
        if self.open_reason is not None:
            return
        self.open_reason = reason
        afosto = reason != "output_unroutable"
        if afosto:  # invoicer_afosto_circuit_open blames Afosto; an unroutable output is ours
            self._metrics.circuit_open.set(1)
        self._metrics.pauses.labels(reason=reason).inc()
        source = "afosto" if afosto else "broker"
        log.error("pausing consumption: %s %s %s", source, reason, detail[:200])
        self._spawn(self._trip(reason))

    def api_result(self, ok: bool) -> None:
        """Feed every Afosto round trip here; sustained failure opens the circuit."""
        if ok:
            self._failing_since, self._failures = None, 0
            return
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        self._failures += 1
        sustained = now - self._failing_since >= self._config.api_down_after
        if sustained and self._failures >= self._config.api_down_min_failures:
            self.open("api_down", f"{self._failures} failures in a row")

    async def _trip(self, reason: PauseReason) -> None:
        async with self._lock:
            self._before_pause()
            await self._until_done(self._consumers.pause, "pause")
            self.paused = True
            self._metrics.paused.set(1)
        unroutable = reason == "output_unroutable"
        if unroutable:
            await asyncio.sleep(self._unroutable_wait())
        else:
            await self._until_afosto_answers()
        async with self._lock:
            await self._until_done(self._consumers.resume, "resume")
            self.paused = False
            self._metrics.paused.set(0)
        self.open_reason = None
        self._failing_since, self._failures = None, 0
        self._metrics.circuit_open.set(0)
        if unroutable:
            self._unroutable_resumed_at = time.monotonic()
            log.warning("consumption resumed: trying the output exchange again")
        else:
            log.warning("afosto answers again: consumption resumed")

    def _unroutable_wait(self) -> float:
        """Seconds to stay paused: doubling while pauses follow each other within `probe_max`."""
        if time.monotonic() - self._unroutable_resumed_at > self._config.probe_max:
            self._unroutable_pauses = 0
        doubled = self._config.probe_initial * 2.0 ** min(self._unroutable_pauses, 30)
        self._unroutable_pauses += 1
        return min(self._config.probe_max, doubled)

    async def _until_afosto_answers(self) -> None:
        initial = self._config.probe_initial
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(
                multiplier=initial, max=self._config.probe_max, jitter=initial
            ),
            retry=retry_if_exception_type(Exception),
            stop=stop_never,
            reraise=True,
        )
        await asyncio.sleep(self._config.probe_initial)
        async for attempt in retrying:
            with attempt:
                await self._probe_once()

    async def _probe_once(self) -> None:
        try:
            async with asyncio.timeout(self._config.probe_timeout):
                await self._probe()
        except Exception as exc:
            self._metrics.probes.labels(outcome="failed").inc()
            log.info("afosto probe failed: %s", type(exc).__name__)
            raise
        self._metrics.probes.labels(outcome="ok").inc()

    async def _until_done(self, step: Callable[[], Awaitable[None]], name: str) -> None:
        # Pausing or resuming can fail while the broker is away; it must still happen.
        retrying = AsyncRetrying(
            wait=wait_exponential(
                multiplier=self._config.probe_initial, max=self._config.probe_max
            ),
            retry=retry_if_exception_type(Exception),
            stop=stop_never,
            before_sleep=lambda state: log.warning(
                "%s consumers failed (%s); retrying",
                name,
                type(state.outcome.exception()).__name__ if state.outcome else "?",
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await step()
