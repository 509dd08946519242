"""One limiter shared by every Afosto call: it learns the rate Afosto allows and paces below it.

Afosto publishes no limits and no rate headers, so the pace is learnt (AIMD). Calls start
unpaced. A refusal sets the pace to `decrease` x the rate answered just before it and slows every
call; refusals of calls sent before that cut were already on the wire and count once. While the
pace holds calls back it rises by `probe` per call, a step that doubles every `probe_doubling`
calls without a refusal (after a deep cut: quickly back to where one refusal would have cut to).
Refusals in a row cut deeper and, past `free_strikes`, pause everyone 1 s, 2 s, 4 s, ...
(Afosto's advice), as does one before anything was answered. A Retry-After pauses everyone.
Past `calm` seconds without a refusal the pace also doubles every `regrow` seconds of holding
calls back: a limit that was low for a while (a storm, a busy tenant) and is raised again is
found within a minute, not after thousands of calls at the low pace.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

Sleep = Callable[[float], Awaitable[None]]

# (limiter, pace epoch) of the call this task last sent: rate_limited()/succeeded() read it, so
# the client needs no ticket. asynccontextmanager runs slot() in the caller's context.
_SENT: ContextVar[tuple[object, int] | None] = ContextVar("afosto_limiter_sent", default=None)


class SharedLimiter:
    """Concurrency cap, learnt pace and shared pauses for one client's calls (one event loop)."""

    def __init__(
        self,
        *,
        concurrency: int = 16,
        decrease: float = 0.85,
        probe: float = 0.0005,
        probe_doubling: int = 500,
        window: float = 1.0,
        min_rate: float = 1.0,
        free_strikes: int = 2,
        calm: float = 60.0,
        regrow: float = 5.0,
        max_pause: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 < decrease < 1.0 or probe < 0 or probe_doubling <= 0 or window <= 0:
            raise ValueError("need 0 < decrease < 1, probe >= 0, probe_doubling > 0, window > 0")
        if min_rate <= 0 or calm < 0 or regrow <= 0:
            raise ValueError("need min_rate > 0, calm >= 0, regrow > 0")
        self.concurrency = concurrency
        self.decrease = decrease
        self.probe = probe
        self.probe_doubling = probe_doubling
        self.window = window
        self.min_rate = min_rate
        self.free_strikes = free_strikes
        self.calm = calm
        self.regrow = regrow
        self.max_pause = max_pause
        self._sleep = sleep
        self._now = monotonic
        self._rate: float | None = None  # calls/s; None: not paced (no refusal seen yet)
        self._epoch = 0  # bumped by every cut of the pace
        self._next_at = -math.inf  # earliest instant the next paced call may go
        self._probes = 0  # calls held back by the pace since the last cut
        self._known = 0.0  # where a single refusal would have cut to: quick to climb back to
        self._cut_at, self._cut_rate = 0.0, 0.0  # when the last cut was, and to what pace
        self._pause_until = 0.0
        self._strikes = 0
        self._accepted: deque[float] = deque()  # completion times within `window`
        self._first_sent: float | None = None
        self._active = 0
        self._changed = asyncio.Condition()
        self.refusals = 0  # refusals that moved the pace
        self.counted_once = 0  # refusals of calls sent before the last cut

    @property
    def limit(self) -> int:
        """How many calls may be in flight at once."""
        return self.concurrency

    @property
    def rate(self) -> float | None:
        """The current pace in calls per second; None while calls are not paced."""
        return self._rate

    @property
    def pause_remaining(self) -> float:
        return max(self._pause_until - self._now(), 0.0)

    def rate_limited(self, retry_after: float | None) -> float:
        """Record a refusal for rate; returns the pause every call now observes (seconds)."""
        now = self._now()
        pause = 0.0
        if self._sent_epoch() == self._epoch:
            self.refusals += 1
            self._strikes += 1
            if self._rate is None and self._achieved(now) == 0:
                pause = 2.0 ** (self._strikes - 1)  # no rate to learn from yet
            else:
                self._cut(now)
                if self._strikes > self.free_strikes:
                    pause = 2.0 ** (self._strikes - self.free_strikes - 1)
        else:
            self.counted_once += 1
        if retry_after is not None:
            pause = max(pause, retry_after)
        if pause > 0:
            self._pause_until = max(self._pause_until, now + min(pause, self.max_pause))
        return self.pause_remaining

    def succeeded(self) -> None:
        """Record an answered call (it fed the achieved rate; at the current pace it ends a run)."""
        now = self._now()
        self._accepted.append(now)
        self._forget(now)
        if self._sent_epoch() == self._epoch:
            self._strikes = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of `concurrency` slots, then wait out any pause and the pace."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._active < self.concurrency)
            self._active += 1
        try:
            _SENT.set((self, await self._turn()))
            yield
        finally:
            async with self._changed:
                self._active -= 1
                self._changed.notify_all()

    async def _turn(self) -> int:
        """Wait until this call may go; returns the pace epoch it goes under."""
        waited_out = 0.0
        while True:
            if self._pause_until > waited_out and (pause := self.pause_remaining) > 0:
                waited_out = self._pause_until
                await self._sleep(pause)
                continue
            waited_out = self._pause_until
            now = self._now()
            if self._first_sent is None:
                self._first_sent = now
            epoch, rate = self._epoch, self._rate
            if rate is None:
                return epoch
            if self._next_at > now:
                # Grow only while the pace holds calls back: an idle client learns nothing.
                if rate < self._known:
                    rate = min(self._known, max(rate * 1.1, rate + 1.0))
                else:
                    rate *= 1.0 + self.probe * 2.0 ** min(self._probes / self.probe_doubling, 5.0)
                # Per call, a pace cut to 1/s would take hours to find a limit raised to 50/s.
                if (calm := now - self._cut_at - self.calm) > 0:
                    rate = max(rate, self._cut_rate * 2.0 ** min(calm / self.regrow, 30.0))
                self._rate = rate
                self._probes += 1
            at = max(self._next_at, now)
            self._next_at = at + 1.0 / rate
            if at <= now:
                return epoch
            await self._sleep(at - now)
            # A cut or a pause that came meanwhile holds this call back too: take a new turn.
            if self._epoch == epoch and self._pause_until <= waited_out:
                return epoch

    def _cut(self, now: float) -> None:
        achieved = self._achieved(now)
        # The achieved rate dips when demand does: never cut below half the pace per refusal.
        paced = self._rate
        base = achieved if paced is None else min(paced, max(achieved, paced / 2))
        if achieved > 0:  # a storm that lets nothing through says nothing about the rate
            self._known = base * self.decrease
        self._rate = max(base * self.decrease**self._strikes, self.min_rate)
        self._cut_at, self._cut_rate = now, self._rate
        self._epoch += 1
        self._next_at = now + 1.0 / self._rate
        self._probes = 0

    def _achieved(self, now: float) -> float:
        """Answered calls per second over the last `window`, not counting time before the first
        call or within the last pause (nothing could be sent then)."""
        self._forget(now)
        first = self._first_sent if self._first_sent is not None else now
        start = max(now - self.window, first, min(self._pause_until, now))
        answered = sum(1 for t in self._accepted if t >= start)
        return answered / max(now - start, 1e-3) if answered else 0.0

    def _forget(self, now: float) -> None:
        while self._accepted and self._accepted[0] < now - self.window:
            self._accepted.popleft()

    def _sent_epoch(self) -> int:
        sent = _SENT.get()
        return sent[1] if sent is not None and sent[0] is self else self._epoch
