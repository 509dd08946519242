"""The shared limiter against a token bucket of unknown rate, in virtual time: it settles just
below the rate, follows it up and down, honours Retry-After and keeps refusals rare."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from consumer.afosto import SharedLimiter


class VirtualTime:
    """A clock that jumps to the next sleeper's wake-up once every task is blocked."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), woken))
        await woken

    async def run_until(self, end: float) -> None:
        while True:
            # No real I/O anywhere: a few loop turns let every woken task run until it sleeps.
            for _ in range(10):
                await asyncio.sleep(0)
            if not self._sleepers or self._sleepers[0][0] > end:
                self.now = end
                return
            when, _, woken = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            woken.set_result(None)


class Bucket:
    """The sandbox's rule: `rate` tokens per second, at most `burst` saved up."""

    def __init__(self, clock: VirtualTime, rate: float, burst: int) -> None:
        self.clock, self.rate, self.burst = clock, rate, burst
        self.tokens, self.stamp = float(burst), 0.0

    def take(self) -> bool:
        now = self.clock.now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class Run:
    clock: VirtualTime
    limiter: SharedLimiter
    bucket: Bucket
    sent: list[tuple[float, bool]] = field(default_factory=list)  # (send time, accepted)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def between(self, start: float, end: float) -> tuple[float, float]:
        """Accepted calls per second and the share refused, for calls sent in [start, end)."""
        window = [ok for t, ok in self.sent if start <= t < end]
        accepted = sum(window)
        return accepted / (end - start), (len(window) - accepted) / max(len(window), 1)


def saturated(
    rate: float,
    *,
    burst: int = 20,
    workers: int = 16,
    latency: float = 0.005,
    refuse: Callable[[Run], float | None] | None = None,
) -> Run:
    """`workers` tasks calling back to back through one limiter, as a drained backlog does."""
    clock = VirtualTime()
    limiter = SharedLimiter(concurrency=workers, sleep=clock.sleep, monotonic=clock.monotonic)
    run = Run(clock, limiter, Bucket(clock, rate, burst))

    async def worker() -> None:
        while True:
            async with limiter.slot():
                sent = clock.now
                ok = run.bucket.take()
                await clock.sleep(latency)
            run.sent.append((sent, ok))
            if ok:
                limiter.succeeded()
            else:
                limiter.rate_limited(refuse(run) if refuse else None)

    run.tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    return run


async def stop(run: Run) -> None:
    for task in run.tasks:
        task.cancel()
    await asyncio.gather(*run.tasks, return_exceptions=True)


@pytest.mark.parametrize(
    ("rate", "burst", "latency", "least"),
    [(50, 20, 0.005, 0.95), (50, 20, 0.05, 0.95), (150, 20, 0.02, 0.95), (5, 5, 0.05, 0.9)],
)
async def test_settles_at_the_bucket_rate_with_rare_refusals(
    rate: float, burst: int, latency: float, least: float
) -> None:
    run = saturated(rate, burst=burst, latency=latency)
    await run.clock.run_until(120)
    await stop(run)
    achieved, refused = run.between(30, 120)
    assert least * rate <= achieved <= rate * 1.01
    assert refused < 0.01
    # Unpaced, 16 workers would send ~3,000 calls/s at 5 ms: the pace is what holds them back.
    assert run.limiter.rate is not None
    assert 0.7 * rate < run.limiter.rate < 1.3 * rate


async def test_without_a_burst_to_absorb_overshoots_it_still_uses_most_of_the_rate() -> None:
    run = saturated(50, burst=1, latency=0.02)
    await run.clock.run_until(150)
    await stop(run)
    achieved, refused = run.between(30, 150)
    assert 0.8 * 50 <= achieved <= 50
    assert refused < 0.01


async def test_a_raised_limit_is_found_and_a_lowered_one_followed() -> None:
    run = saturated(50)
    await run.clock.run_until(40)
    run.bucket.rate = 100
    await run.clock.run_until(100)
    up, _ = run.between(70, 100)
    run.bucket.rate = 20
    await run.clock.run_until(160)
    await stop(run)
    down, refused = run.between(130, 160)
    assert up >= 0.9 * 100
    assert 0.9 * 20 <= down <= 20 * 1.01
    assert refused < 0.01
    assert sum(not ok for t, ok in run.sent if 100 <= t < 130) < 40  # the drop costs a few


async def test_a_storm_pauses_everyone_longer_and_longer_then_the_pace_comes_back() -> None:
    run = saturated(50)
    await run.clock.run_until(40)
    run.bucket.rate, run.bucket.tokens = 0.0, 0.0  # every call refused for 60 s
    await run.clock.run_until(100)
    storm = [t for t, ok in run.sent if 40 <= t < 100]
    run.bucket.rate = 50
    await run.clock.run_until(130)
    await stop(run)
    assert len(storm) < 30  # 1 s, 2 s, 4 s, ... pauses: a handful of calls, not 16 x 60 s
    assert max(b - a for a, b in itertools.pairwise(storm)) >= 16
    after, _ = run.between(110, 130)
    assert after >= 0.9 * 50


async def test_a_limit_that_was_a_trickle_for_minutes_is_found_again_soon() -> None:
    """Seen in chaos Tier 2: a 3/s storm left a process pacing at ~1 call/s long after the
    limit was back at its usual rate."""
    run = saturated(50)
    await run.clock.run_until(40)
    run.bucket.rate = 1.0  # a trickle, long enough for the pace to learn it
    await run.clock.run_until(160)
    trickle = run.limiter.rate
    run.bucket.rate = 50
    await run.clock.run_until(300)
    await stop(run)
    assert trickle is not None
    assert trickle < 3
    after, refused = run.between(260, 300)  # within 100 s of the limit's return
    assert after >= 0.9 * 50
    assert refused < 0.01


async def test_retry_after_holds_every_call_back_that_long() -> None:
    proxy_said: list[float] = []

    def retry_after(run: Run) -> float | None:
        if not proxy_said and run.clock.now >= 20:
            proxy_said.append(run.clock.now)
            return 5.0
        return None

    run = saturated(50, refuse=retry_after)
    await run.clock.run_until(40)
    await stop(run)
    (refused_at,) = proxy_said
    during = [t for t, _ in run.sent if refused_at + 0.01 < t < refused_at + 5]
    assert during == []
    assert [t for t, _ in run.sent if refused_at + 5 <= t < refused_at + 6]  # and then resume


async def test_calls_already_in_flight_when_refused_count_once() -> None:
    clock = VirtualTime()
    limiter = SharedLimiter(concurrency=16, sleep=clock.sleep, monotonic=clock.monotonic)
    in_flight = asyncio.Event()
    entered = 0

    async def call(ok: bool) -> None:
        nonlocal entered
        async with limiter.slot():
            if not ok:
                entered += 1
                if entered == 16:
                    in_flight.set()
                await in_flight.wait()
        if ok:
            limiter.succeeded()
        else:
            limiter.rate_limited(None)

    # 4 answered at 0.5 s, then 16 sent together and all refused: one cut, no pause.
    for _ in range(4):
        await asyncio.create_task(call(True))
        clock.now += 0.125
    await asyncio.gather(*(call(False) for _ in range(16)))
    assert (limiter.refusals, limiter.counted_once) == (1, 15)
    assert limiter.pause_remaining == 0
    assert limiter.rate == pytest.approx(0.85 * 4 / 0.5)


async def test_the_pace_does_not_grow_while_demand_stays_below_it() -> None:
    run = saturated(50)
    await run.clock.run_until(30)
    await stop(run)
    paced = run.limiter.rate
    assert paced is not None
    run.clock.now += 1  # past the turns the stopped workers had reserved

    async def call() -> None:
        async with run.limiter.slot():
            pass
        run.limiter.succeeded()

    for _ in range(200):  # one call every 0.1 s, well below the pace
        await call()
        run.clock.now += 0.1
    assert run.limiter.rate == paced


async def test_a_refusal_before_any_answer_pauses_like_afosto_advises() -> None:
    clock = VirtualTime()
    limiter = SharedLimiter(sleep=clock.sleep, monotonic=clock.monotonic)
    assert limiter.rate_limited(None) == 1.0
    assert limiter.rate_limited(None) == 2.0
    assert limiter.rate is None  # nothing to pace from yet


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="decrease"):
        SharedLimiter(decrease=1.0)
    with pytest.raises(ValueError, match="min_rate"):
        SharedLimiter(min_rate=0)
