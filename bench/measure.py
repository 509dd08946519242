"""/proc sampling: CPU seconds and RSS of processes, once or in the background."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name may hold spaces or parentheses; fields after the last ')' are fixed.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def local_broker_pid() -> int | None:
    """The pid of a RabbitMQ (beam.smp) on this machine, to count its CPU; None if none."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", "rb") as f:
                    if f.read().strip() == b"beam.smp":
                        return int(entry)
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return None


class CpuMeter:
    """CPU seconds that groups of processes spend between `start()` and `stop()`."""

    def __init__(self, groups: dict[str, Sequence[int | None]]) -> None:
        self._groups = {
            name: [p for p in pids if p is not None]
            for name, pids in groups.items()
            if any(p is not None for p in pids)
        }
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(map(cpu_seconds, pids)) for name, pids in self._groups.items()}

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> None:
        self.used = {name: t - self._start[name] for name, t in self._now().items()}


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` now."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


@dataclass
class Sampler:
    """Samples one pid's RSS and CPU every `interval` seconds while running (see `sampling`)."""

    pid: int
    interval: float = 0.25
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # (t, rss, cpu)

    def sample(self) -> tuple[float, int, float] | None:
        try:
            point = (time.monotonic(), rss_bytes(self.pid), cpu_seconds(self.pid))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return None  # the process is gone
        self.samples.append(point)
        return point

    async def _loop(self) -> None:
        while True:
            if self.sample() is None:
                return
            await asyncio.sleep(self.interval)

    @property
    def peak_rss(self) -> int:
        return max((s[1] for s in self.samples), default=0)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used between the samples nearest to monotonic times `start` and `end`."""
        if not self.samples:
            return math.nan
        first = min(self.samples, key=lambda s: abs(s[0] - start))
        last = min(self.samples, key=lambda s: abs(s[0] - end))
        return last[2] - first[2]


@asynccontextmanager
async def sampling(pid: int, interval: float = 0.25) -> AsyncIterator[Sampler]:
    """Sample `pid` in the background for the block's duration (one sample at each end)."""
    sampler = Sampler(pid, interval)
    task = asyncio.create_task(sampler._loop())
    try:
        yield sampler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sampler.sample()
