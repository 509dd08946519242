"""Memoized query responses: valid until the store changes or a pending PDF becomes due.

Polling clients (and benchmarks) ask the same question many times; while nothing changed the
answer is byte-identical, so it is served without executing the document again."""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from typing import Any

CacheKey = tuple[str, str, str | None]


@dataclass(frozen=True)
class Entry:
    revision: int
    valid_until: float
    raw: bytes
    outcome: str


class ResponseCache:
    """Bounded; emptied wholesale when full (entries are cheap to rebuild)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.enabled = True
        self.hits = 0
        self._max = max_entries
        self._entries: dict[CacheKey, Entry] = {}
        self._pdf_due: list[float] = []
        self._pruned_until = float("-inf")  # due times up to here are gone from the heap

    @staticmethod
    def key(query: str, variables: dict[str, Any] | None, operation_name: str | None) -> CacheKey:
        return (query, json.dumps(variables, sort_keys=True) if variables else "", operation_name)

    def pdf_scheduled(self, ready_at: float) -> None:
        """A pdf_url flips from null at `ready_at`: no entry may outlive that moment."""
        heapq.heappush(self._pdf_due, ready_at)

    def _next_change(self, now: float) -> float:
        due = self._pdf_due
        while due and due[0] <= now:
            heapq.heappop(due)
        self._pruned_until = max(self._pruned_until, now)
        return due[0] if due else float("inf")

    def get(self, key: CacheKey, revision: int, now: float) -> Entry | None:
        """The answer stored for `key`, if it is still the one executing would give now."""
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None or entry.revision != revision or now >= entry.valid_until:
            return None
        self.hits += 1
        return entry

    def put(self, key: CacheKey, revision: int, now: float, raw: bytes, outcome: str) -> None:
        """Keep an answer computed at `now` until the store changes or a PDF comes due."""
        # An answer computed as of an earlier moment (a request delayed by a latency fault)
        # than a due time already pruned cannot know when it expires: do not keep it.
        if not self.enabled or now < self._pruned_until:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = Entry(revision, self._next_change(now), raw, outcome)
