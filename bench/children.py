"""Child processes that are always reaped: any command, the sandbox and the Afosto stand-in.

Every child runs in its own session and is killed as a group when its block exits, on errors
and on Ctrl-C alike (and, on Linux, when the bench itself dies: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

API_KEY = "bench-api-key-0123456789"
# Children run from the repo root, so `python -m bench.<name>` finds this package.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _die_with_parent() -> None:
    # Runs in the child before exec: if the bench is SIGKILLed, the kernel kills the child.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """A child process in its own session; `lines` keeps the tail of its stderr."""

    name: str
    proc: asyncio.subprocess.Process
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def exited(self) -> bool:
        return self.proc.returncode is not None

    def tail(self, n: int = 30) -> str:
        return "\n".join(list(self.lines)[-n:])


async def _pump(stream: asyncio.StreamReader | None, sink: deque[str]) -> None:
    if stream is None:
        return
    async for raw in stream:
        sink.append(raw.decode(errors="replace").rstrip())


async def _reap(child: Child, grace: float) -> None:
    """SIGTERM the child's process group, SIGKILL it after `grace` seconds; always wait."""
    proc = child.proc
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if proc.returncode is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), wait)
    # Anything the child left behind in its group goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


@asynccontextmanager
async def child_process(
    name: str, argv: Sequence[str], env: Mapping[str, str] | None = None, *, grace: float = 10.0
) -> AsyncIterator[Child]:
    """Run `argv` until the block exits, then kill and reap it (also on error and Ctrl-C)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env) if env is not None else None,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    child = Child(name, proc)
    pumps = [
        asyncio.create_task(_pump(proc.stdout, child.lines)),
        asyncio.create_task(_pump(proc.stderr, child.lines)),
    ]
    try:
        yield child
    finally:
        # Shielded: a second Ctrl-C must not leave the child running.
        await asyncio.shield(_reap(child, grace))
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def wait_for(
    check: Callable[[], Awaitable[bool] | bool],
    *,
    within: float,
    what: str,
    child: Child | None,
    poll: float = 0.05,
) -> None:
    """Poll `check` until true; fail naming `what` (with the child's log tail) otherwise."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        if child is not None and child.exited:
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}):\n{child.tail()}")
        if time.monotonic() > deadline:
            tail = f":\n{child.tail()}" if child is not None else ""
            raise RuntimeError(f"timed out after {within}s waiting for {what}{tail}")
        await asyncio.sleep(poll)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the sandbox (and any HTTP stand-in) in its own process -------------------------------


@dataclass
class HttpApi:
    """A GraphQL endpoint in a child process, plus its JSON control API."""

    child: Child
    base_url: str
    api_key: str
    session: aiohttp.ClientSession

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call `/_control/<path>`; raises on a non-2xx answer."""
        url = f"{self.base_url}/_control/{path.lstrip('/')}"
        async with self.session.request(method, url, json=body) as response:
            text = await response.text()
            if response.status >= 300:
                raise RuntimeError(f"{method} {url}: {response.status} {text[:300]}")
            return json.loads(text) if text else None


async def _listening_url(child: Child, marker: str, within: float) -> str:
    found: list[str] = []

    def seen() -> bool:
        for line in child.lines:
            if marker in line:
                found.append(line.split(marker, 1)[1].split()[0])
                return True
        return False

    await wait_for(seen, within=within, what=f"{child.name} to listen", child=child)
    return found[0].rstrip("/")


@asynccontextmanager
async def sandbox_process(
    *, seed: int = 0, faults: Mapping[str, object] | None = None, lenient: bool = False
) -> AsyncIterator[HttpApi]:
    """`python -m sandbox` on a free port with these fault knobs (see sandbox/faults.py)."""
    argv = [sys.executable, "-m", "sandbox", "--port", "0", "--seed", str(seed)]
    argv += ["--api-key", API_KEY, "--lenient" if lenient else "--strict"]
    for knob, value in (faults or {}).items():
        argv += ["--fault", f"{knob}={value}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
    async with (
        child_process("sandbox", argv, env) as child,
        aiohttp.ClientSession() as session,
    ):
        base = await _listening_url(child, "sandbox listening on ", 30)
        yield HttpApi(child, base, API_KEY, session)


@asynccontextmanager
async def standin_process(
    *,
    seed: int = 0,
    pdf_delay_s: float = 0.0,
    pdf_delay_max_s: float = 0.0,
    latency_ms: float = 0.0,
    extra: Sequence[str] = (),
) -> AsyncIterator[HttpApi]:
    """bench/standin.py (a zero-latency Afosto stand-in) on a free port."""
    argv = [sys.executable, "-m", "bench.standin", "--port", "0", "--api-key", API_KEY]
    argv += ["--seed", str(seed), "--pdf-delay", str(pdf_delay_s)]
    argv += ["--pdf-delay-max", str(pdf_delay_max_s), "--latency-ms", str(latency_ms), *extra]
    async with (
        child_process("standin", argv) as child,
        aiohttp.ClientSession() as session,
    ):
        base = await _listening_url(child, "standin listening on ", 30)
        yield HttpApi(child, base, API_KEY, session)
