"""Per-process memory of work already confirmed, so duplicates cost no Afosto calls.

Triggers for one change arrive several times (the fulfilment event, Afosto's webhooks, bus
redeliveries), and each plans the same intent. Once this process has *confirmed* an invoice's
`invoice.created` and its first PDF check, a later intent for that invoice adds nothing; once
it confirmed `invoice.pdf_ready`, later PDF checks add nothing. Deliveries for the same key are
also handled one at a time, so a duplicate waits for the first instead of racing it into a
conflicting mutation. Other replicas still converge through the conflict rule (DESIGN §3);
this only saves calls, it is never needed for correctness.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

DEFAULT_TTL = 600.0
DEFAULT_MAX_KEYS = 100_000


class Confirmed:
    """A bounded, expiring set of keys whose work was confirmed by the broker."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str) -> None:
        self._keys[key] = self._clock() + self._ttl
        self._keys.move_to_end(key)
        while len(self._keys) > self._max:
            self._keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or key not in self._keys:
            return False
        if self._keys[key] < self._clock():
            del self._keys[key]
            return False
        return True

    def __len__(self) -> int:
        return len(self._keys)


class OneAtATime:
    """Per-key mutual exclusion; locks disappear when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
