"""The seeded fault schedule and its injection: SIGKILLs at random times, crash points handed
to restarting processes, connection closes, broker outages and kills, the API fault mix, and
a final blow (every killable process and the broker at once) while events are in flight."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sandbox
from tests.chaos.broker import Broker
from tests.chaos.fleet import Fleet
from tests.chaos.tiers import Tier

log = logging.getLogger(__name__)
STORM_S = 5.0
API_OFF = dict.fromkeys(
    (
        "http_500_rate", "http_502_rate", "http_503_rate", "http_429_rate", "internal_error_rate",
        "reset_rate", "malformed_json_rate", "hold_rate", "rate_limit_rps", "pdf_never_rate",
        "latency_ms", "latency_jitter_ms",
    ),
    0.0,
)  # fmt: skip


@dataclass
class Fault:
    kind: (
        str  # sigkill | crash_point | close_connections | broker_outage | broker_kill | api_faults
    )
    detail: str
    start: float  # monotonic
    end: float
    broker_down: bool = False


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after t0
    kind: str
    slot: int = 0


def schedule(tier: Tier) -> list[Planned]:
    """Seeded times for every fault that is not a crash point (those ride on restarts)."""
    rng = random.Random(f"chaos-faults:{tier.seed}")
    lo, hi = 5.0, tier.fault_window_s - 8
    targets = [s for s in range(tier.processes) if s not in tier.steady_slots]
    plan = [
        Planned(rng.uniform(lo, hi), "sigkill", rng.choice(targets))
        for _ in range(tier.random_kills)
    ]
    plan += [Planned(rng.uniform(lo, hi), "close_connections") for _ in range(tier.closes)]
    plan += [Planned(rng.uniform(lo, hi), "broker_outage") for _ in range(tier.outages)]
    plan += [Planned(rng.uniform(hi / 2, hi), "broker_kill") for _ in range(tier.broker_kills)]
    plan += [Planned(rng.uniform(lo, hi), "api_storm") for _ in range(tier.storms)]
    # The sandbox's other modes for the middle third: repeated invoice ids answered leniently,
    # and whole-request errors (RATE_LIMITED, INTERNAL_SERVER_ERROR) as real HTTP statuses.
    plan += [Planned(tier.fault_window_s / 3, "api_modes"), Planned(hi * 2 / 3, "api_modes")]
    return sorted(plan, key=lambda p: p.at)


class Injector:
    def __init__(
        self,
        tier: Tier,
        fleet: Fleet,
        broker: Broker,
        sb: sandbox.Sandbox,
        during_outage: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.tier, self.fleet, self.broker, self.sb = tier, fleet, broker, sb
        self.during_outage = during_outage
        self.faults: list[Fault] = []
        self.unfired: list[str] = []
        self.errors: list[str] = []

    def record(
        self, kind: str, detail: str, start: float, end: float | None = None, down: bool = False
    ) -> None:
        self.faults.append(Fault(kind, detail, start, end if end is not None else start, down))

    def on_fleet_event(self, kind: str, slot: int, detail: str) -> None:
        if kind == "crash_point":
            self.record("crash_point", f"slot {slot}: {detail}", time.monotonic())

    async def run(self, t0: float) -> None:
        """Inject everything on schedule, then end the fault window with the final blow."""
        self.sb.faults.configure(**self.tier.api_faults)
        self.record("api_faults", "mix on", t0)
        tasks = []
        for planned in schedule(self.tier):
            await asyncio.sleep(max(0.0, t0 + planned.at - time.monotonic()))
            tasks.append(asyncio.ensure_future(self._guard(planned, self._inject(planned))))
        await asyncio.gather(*tasks)
        await asyncio.sleep(max(0.0, t0 + self.tier.fault_window_s - time.monotonic()))
        await self._end_window(t0)

    async def _guard(self, planned: Planned, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as exc:  # a fault that could not be injected is reported, not hidden
            self.errors.append(f"{planned.kind} at {planned.at:.1f}s: {exc}")
            log.exception("fault %s failed", planned.kind)

    async def _inject(self, planned: Planned) -> None:
        start = time.monotonic()
        if planned.kind == "sigkill":
            killed = self.fleet.kill(planned.slot)
            self.record(
                "sigkill", f"slot {planned.slot}" + ("" if killed else " (was down)"), start
            )
        elif planned.kind == "close_connections":
            closed = await self.broker.close_connections()
            self.record("close_connections", f"{closed} connections ({self.broker.mode})", start)
        elif planned.kind == "broker_outage":
            await self._down(self.broker.outage, "broker_outage", start)
        elif planned.kind == "broker_kill":
            await self._down(self.broker.kill_and_restart, "broker_kill", start)
        elif planned.kind == "api_modes":
            on = not self.sb.store.lenient
            self.sb.store.lenient = self.sb.http_status_mode = on
            self.record("api_modes", f"lenient + HTTP status mode {'on' if on else 'off'}", start)
        elif planned.kind == "api_storm":  # RATE_LIMITED for most calls, 5 s long
            self.sb.faults.configure(rate_limit_rps=3.0, rate_limit_burst=3)
            await asyncio.sleep(STORM_S)
            self.sb.faults.configure(
                rate_limit_rps=self.tier.api_faults["rate_limit_rps"],
                rate_limit_burst=self.tier.api_faults["rate_limit_burst"],
            )
            self.record("api_storm", f"rate limit 3/s for {STORM_S:.0f}s", start, time.monotonic())

    async def _down(
        self, action: Callable[[float], Awaitable[None]], kind: str, start: float
    ) -> None:
        probe = None
        if self.during_outage is not None:  # a webhook now must get 503 (then 200 on retry)
            probe = asyncio.ensure_future(self._probe_later(1.0))
        try:
            await action(self.tier.outage_s)
        finally:
            what = "stop_app/start_app" if kind == "broker_outage" else "kill -9 + restart"
            if self.broker.mode != "real":
                what = "proxy refuses and drops connections"
            end = time.monotonic()
            self.record(kind, f"{what}, {end - start:.1f}s", start, end, down=True)
        if probe is not None:
            await probe

    async def _probe_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        assert self.during_outage is not None
        await self.during_outage()

    async def _end_window(self, t0: float) -> None:
        """Final blow, then no more crash points (still-armed processes count as unfired) and
        no more API faults."""
        self.fleet.arming = False
        for life in self.fleet.armed_alive():
            self.unfired.append(str(life.crash_at))
        self.unfired += self.fleet.armed
        self.fleet.armed.clear()
        start = time.monotonic()
        for slot in range(self.tier.processes):
            if slot not in self.tier.steady_slots and self.fleet.kill(slot):
                self.record("sigkill", f"slot {slot}: final blow", start)
        final = Planned(self.tier.fault_window_s, "broker_outage")
        await self._guard(final, self._down(self.broker.outage, "broker_outage", start))
        self.sb.faults.configure(**API_OFF)
        self.record("api_faults", "mix off", time.monotonic())

    @property
    def last_fault_end(self) -> float:
        return max(f.end for f in self.faults)

    def down_windows(self) -> list[tuple[float, float]]:
        return [(f.start, f.end) for f in self.faults if f.broker_down]
