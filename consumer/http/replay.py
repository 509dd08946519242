"""A bounded memory of webhook message ids already enqueued (afosto-api.md §2.7)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class ReplayWindow:
    """Remembers ids for `ttl` seconds, at most `max_size` of them (oldest forgotten first)."""

    def __init__(
        self, *, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0 or max_size <= 0:
            raise ValueError("ttl and max_size must be positive")
        self._ttl = ttl
        self._max_size = max_size
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, message_id: str) -> bool:
        """True when `message_id` was remembered less than `ttl` seconds ago."""
        self._evict()
        return message_id in self._expiry

    def remember(self, message_id: str) -> None:
        """Record `message_id` (call only once its trigger is confirmed by the broker)."""
        self._expiry.pop(message_id, None)
        self._expiry[message_id] = self._clock() + self._ttl
        self._evict()

    def _evict(self) -> None:
        # Insertion order is expiry order (one fixed ttl), so expired ids sit at the front.
        now = self._clock()
        while self._expiry:
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now and len(self._expiry) <= self._max_size:
                break
            del self._expiry[oldest]
