"""One limiter shared by every Afosto call: after a rate limit, everyone waits and slows down.

RATE_LIMITED / 429 sets a pause-until instant that every call awaits before sending, and for
`slow_for` seconds afterwards at most `slow_concurrency` calls are in flight at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Sleep = Callable[[float], Awaitable[None]]


class SharedLimiter:
    def __init__(
        self,
        *,
        concurrency: int = 16,
        slow_concurrency: int = 2,
        slow_for: float = 30.0,
        max_pause: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self.slow_concurrency = min(slow_concurrency, concurrency)
        self.slow_for = slow_for
        self.max_pause = max_pause
        self._sleep = sleep
        self._now = monotonic
        self._pause_until = 0.0
        self._slow_until = 0.0
        self._strikes = 0
        self._active = 0
        self._changed = asyncio.Condition()

    @property
    def limit(self) -> int:
        """How many calls may be in flight right now."""
        return self.slow_concurrency if self._now() < self._slow_until else self.concurrency

    @property
    def pause_remaining(self) -> float:
        return max(self._pause_until - self._now(), 0.0)

    def rate_limited(self, retry_after: float | None) -> float:
        """Record a rate limit; returns the pause every call now observes (seconds)."""
        self._strikes += 1
        # Afosto sends no Retry-After; its docs advise 1 s, 2 s, 4 s, … between tries.
        pause = retry_after if retry_after is not None else 2.0 ** (self._strikes - 1)
        pause = min(pause, self.max_pause)
        now = self._now()
        self._pause_until = max(self._pause_until, now + pause)
        self._slow_until = max(self._slow_until, now + pause + self.slow_for)
        return pause

    def succeeded(self) -> None:
        self._strikes = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait out any pause, then hold one of the (possibly reduced) concurrency slots."""
        seen = self._pause_until
        if (pause := self.pause_remaining) > 0:
            await self._sleep(pause)
        async with self._changed:
            await self._changed.wait_for(lambda: self._active < self.limit)
            self._active += 1
        try:
            # A rate limit that came in while this call queued for a slot holds it back too.
            if self._pause_until > seen and (pause := self.pause_remaining) > 0:
                await self._sleep(pause)
            yield
        finally:
            async with self._changed:
                self._active -= 1
                self._changed.notify_all()
