"""Concurrent reads of one order share a request that was sent after each of them asked.

Triggers for one change come in threes and fours (the fulfilment event, Afosto's webhooks,
redeliveries), close together, and each one re-reads the order. A plain single-flight cache
would hand a caller an answer from a request sent *before* it asked, which may predate the
change its trigger announces. `FreshReads` keeps the guarantee a request of one's own gives:
callers asking before a read is sent share it, and a caller asking while a read of the key
is in flight joins the next one, sent once that one returns or `window` has passed, whichever
comes first. Triggers a few milliseconds apart cost two reads instead of N; a caller that
joins waits at most `window` longer than a read of its own would take, and a lone caller
waits no longer than before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from consumer.afosto.errors import NotSent
from handlers.errors import Transient

T = TypeVar("T")

# How long a follow-up read waits for the one in flight before it goes anyway: long enough for
# the triggers of one change (a few milliseconds apart) to share it, short enough that joiners
# hold their consume slots hardly longer than a read of their own. In the demo, p50 to
# invoice.created was 96-150 ms before sharing; waiting for the whole read in flight gave
# 125-233 ms, a 30 ms window 99-263 ms, and 10 ms 109-160 ms in runs alternating with the tree
# before, at 14-17 % fewer Afosto calls (docs/performance.md).
JOIN_WINDOW: Final = 0.01


class FreshReads(Generic[T]):
    """`get(key)` answers from a `fetch(key)` that started after the call."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[T]],
        *,
        window: float = JOIN_WINDOW,
        on_shared: Callable[[], None] = lambda: None,
    ) -> None:
        self._fetch = fetch
        self._window = window
        self._on_shared = on_shared
        self._sent: dict[str, asyncio.Task[T]] = {}  # in flight: too old to join
        self._next: dict[str, asyncio.Task[T]] = {}  # waiting for the one in flight: joinable
        self._tasks: set[asyncio.Task[T]] = set()
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Reads sent or waiting to be sent."""
        return len(self._tasks)

    async def get(self, key: str) -> T:
        """The answer of a read sent after this call; its error when it failed."""
        if self._closed:
            raise NotSent("Afosto client closed")
        task = self._next.get(key)
        if task is not None:
            self._on_shared()
        else:
            # Joinable until it is sent: callers in this tick, or while `previous` is out.
            task = asyncio.ensure_future(self._read(key, self._sent.get(key)))
            self._next[key] = task
            self._tasks.add(task)
            task.add_done_callback(self._done)
        try:
            # A cancelled caller leaves the read to the others who share it.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if task.cancelled() and me is not None and not me.cancelling():
                raise Transient("Afosto client closed during the read") from None
            raise

    async def close(self) -> None:
        """Cancel every read; callers still waiting get Transient, not someone else's cancel."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _read(self, key: str, previous: asyncio.Task[T] | None) -> T:
        me = asyncio.current_task()
        assert me is not None
        if previous is not None:  # its outcome is its callers' business, not this read's
            await asyncio.wait([previous], timeout=self._window)
        del self._next[key]
        self._sent[key] = me
        try:
            return await self._fetch(key)
        finally:
            if self._sent.get(key) is me:
                del self._sent[key]

    def _done(self, task: asyncio.Task[T]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have been cancelled meanwhile
