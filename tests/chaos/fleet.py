"""The service as real subprocesses (`python -m consumer run`): slots that are killed,
armed with crash points, restarted, and whose every log line and RSS sample is kept. Every
process dies with the harness (tests.support.children), however the harness ends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from consumer.crash import EXIT_CODE
from tests.support.children import kill_group, spawn_options, track

LINE_LIMIT = 4 * 2**20  # a longer log line would stop the reader and hide every later line
SERVICE = (sys.executable, "-m", "consumer", "run")


@dataclass
class Life:
    """One process of one slot, from spawn to exit."""

    slot: int
    crash_at: str | None
    proc: asyncio.subprocess.Process
    started: float
    lines: list[str] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, bytes)
    ended: float | None = None
    killed: bool = False
    reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    @property
    def ready(self) -> bool:
        return any("invoicer running" in line for line in self.lines)

    @property
    def crashed_at_point(self) -> bool:
        return self.proc.returncode == EXIT_CODE and not self.killed

    def sample_rss(self) -> None:
        try:
            with open(f"/proc/{self.proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        self.rss.append((time.monotonic(), int(line.split()[1]) * 1024))
        except OSError:
            pass


class Fleet:
    """`size` slots of the service; a supervisor restarts whatever died."""

    def __init__(
        self,
        size: int,
        env: Callable[[int], Mapping[str, str]],
        *,
        restart_delay: float = 1.0,
        on_event: Callable[[str, int, str], None] | None = None,
        command: Sequence[str] = SERVICE,
    ) -> None:
        self.size = size
        self.command = tuple(command)
        self._env = env
        self.restart_delay = restart_delay
        self.lives: list[Life] = []
        self.current: dict[int, Life] = {}
        self.armed: list[str] = []  # crash points handed to the next starts
        self.arming = True
        self.steady: set[int] = set()  # slots never armed with a crash point
        self._on_event = on_event or (lambda kind, slot, detail: None)
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        for slot in range(self.size):
            await self.spawn(slot)
        self._supervisor = asyncio.ensure_future(self._supervise())

    async def spawn(self, slot: int, crash_at: str | None = None) -> Life:
        if crash_at is None and self.arming and self.armed and slot not in self.steady:
            crash_at = self.armed.pop(0)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
        env.update(self._env(slot))
        if crash_at:
            env["INVOICER_CRASH_AT"] = crash_at
        proc = await asyncio.create_subprocess_exec(
            *self.command,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
            **spawn_options(),
        )
        track(proc.pid)
        life = Life(slot, crash_at, proc, time.monotonic())
        life.reader = asyncio.ensure_future(self._read(life))
        self.lives.append(life)
        self.current[slot] = life
        self._on_event("spawn", slot, crash_at or "")
        return life

    async def _read(self, life: Life) -> None:
        assert life.proc.stderr is not None
        async for raw in life.proc.stderr:
            life.lines.append(raw.decode(errors="replace").rstrip())

    def kill(self, slot: int) -> bool:
        """SIGKILL the slot's process (the supervisor restarts it); False if it was dead."""
        life = self.current.get(slot)
        if life is None or not life.alive:
            return False
        life.killed = True
        kill_group(life.proc.pid)
        self._on_event("sigkill", slot, life.crash_at or "")
        return True

    def live(self) -> list[Life]:
        return [life for life in self.current.values() if life.alive]

    def armed_alive(self) -> list[Life]:
        return [life for life in self.live() if life.crash_at]

    async def _supervise(self) -> None:
        while not self._stopping:
            for slot, life in list(self.current.items()):
                if life.alive:
                    life.sample_rss()
                    continue
                if life.ended is None:
                    life.ended = time.monotonic()
                    if life.reader is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(life.reader, 5)
                    kind = "crash_point" if life.crashed_at_point else "exit"
                    if not life.killed:
                        self._on_event(kind, slot, f"{life.crash_at} rc={life.proc.returncode}")
                if time.monotonic() - life.ended >= self.restart_delay and not self._stopping:
                    await self.spawn(slot)
            await asyncio.sleep(0.25)

    async def wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        while not all(life.alive and life.ready for life in self.current.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("service processes not ready:\n" + self.tail())
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """SIGTERM every live process and wait for its drain (SIGKILL after 30 s)."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for life in self.lives:
            if life.alive:
                life.proc.send_signal(signal.SIGTERM)
        for life in self.lives:
            try:
                await asyncio.wait_for(life.proc.wait(), 30)
            except TimeoutError:
                kill_group(life.proc.pid)
                await life.proc.wait()
            if life.reader is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(life.reader, 5)
            life.ended = life.ended or time.monotonic()

    def kill_all(self) -> int:
        """SIGKILL every live process group at once, synchronously: the last word on any exit
        path (an exception, a cancelled run); returns how many were alive."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
        alive = [life for life in self.lives if life.alive]
        for life in alive:  # only unreaped pids: a reaped one may belong to someone else now
            kill_group(life.proc.pid)
        return len(alive)

    def tail(self, n: int = 20) -> str:
        return "\n".join(
            f"[slot {life.slot}] {line}" for life in self.lives[-3:] for line in life.lines[-n:]
        )

    def write_logs(self, path: str) -> None:
        """Every line of every life, prefixed `slot/life crash_at`, for post-mortems."""
        with open(path, "w") as fh:
            for number, life in enumerate(self.lives):
                for line in life.lines:
                    fh.write(f"{life.slot}/{number} {life.crash_at or '-'} {line}\n")

    def all_lines(self) -> list[str]:
        return [line for life in self.lives for line in life.lines]
