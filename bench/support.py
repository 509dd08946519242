"""Shared bench plumbing: child processes (sandbox, service) that are always reaped, /proc
sampling, percentiles, the output capture, fast confirmed publishing, a table and one JSON line.

Every child runs in its own session and is killed as a group when its block exits, on errors
and on Ctrl-C alike (and, on Linux, when the bench itself dies: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import math
import os
import random
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import uuid4

import aio_pika
import aiohttp
import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from consumer.amqp.declare import declare, delete
from consumer.amqp.topology import Topology, build
from consumer.settings import AmqpSettings, load_settings

BROKER = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
API_KEY = "bench-api-key-0123456789"
# Children run from the repo root, so `python -m bench.<name>` finds this package.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T = TypeVar("T")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# -- naming, seeding, event loop -----------------------------------------------------------


def fresh_prefix(name: str) -> str:
    """A queue prefix no other run uses, e.g. `bench-ceiling-1a2b3c`."""
    return f"bench-{name}-{uuid4().hex[:6]}"


def seeded(seed: int, stream: str) -> random.Random:
    """One named random stream per purpose, so adding draws to one never shifts another."""
    return random.Random(f"{stream}:{seed}")


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = False) -> T:
    """asyncio.run, on uvloop when asked (and installed)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            raise SystemExit("--uvloop: uvloop is not installed (pip install uvloop)") from None
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


# -- statistics and output -------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, `q` in 0..100; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ms(seconds: float) -> float:
    """Seconds → milliseconds, rounded to 0.1 ms (NaN stays NaN)."""
    return seconds if math.isnan(seconds) else round(seconds * 1000, 1)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A fixed-width table; floats get at most 2 decimals."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:,.2f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    )
    print("  ".join("-" * w for w in widths))
    for row in text:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def emit_json(result: Mapping[str, Any]) -> None:
    """The machine-readable result: one JSON line, the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(_jsonable(dict(result)), sort_keys=True), flush=True)


# -- /proc sampling --------------------------------------------------------------------------


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


# -- child processes -------------------------------------------------------------------------


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


# -- the service in its own process ------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """The broker names one bench run uses (all under its own prefix)."""

    prefix: str

    @property
    def input_exchange(self) -> str:
        return f"{self.prefix}.in"

    @property
    def output_exchange(self) -> str:
        return f"{self.prefix}.out"

    def amqp_settings(self, wait_tiers: str | None = None) -> AmqpSettings:
        env = {
            "INVOICER_QUEUE_PREFIX": self.prefix,
            "INVOICER_INPUT_EXCHANGE": self.input_exchange,
            "INVOICER_OUTPUT_EXCHANGE": self.output_exchange,
            "INVOICER_AFOSTO_API_KEY": API_KEY,
        }
        if wait_tiers:
            env["INVOICER_WAIT_TIERS"] = wait_tiers
        return load_settings(env, env_file=None).amqp

    def topology(self, wait_tiers: str | None = None) -> Topology:
        return build(self.amqp_settings(wait_tiers))


def service_env(
    names: Names,
    api: HttpApi,
    *,
    concurrency: int,
    broker: str = BROKER,
    wait_tiers: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of `python -m consumer run` for one bench run (nothing inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
    env.update(
        {
            "INVOICER_AMQP_URL": broker,
            "INVOICER_QUEUE_PREFIX": names.prefix,
            "INVOICER_INPUT_EXCHANGE": names.input_exchange,
            "INVOICER_OUTPUT_EXCHANGE": names.output_exchange,
            "INVOICER_AFOSTO_URL": api.graphql_url,
            "INVOICER_AFOSTO_API_KEY": api.api_key,
            "INVOICER_CONCURRENCY": str(concurrency),
            "INVOICER_LOG_LEVEL": "WARNING",
            "INVOICER_LOG_FORMAT": "text",
            "INVOICER_HTTP_HOST": "127.0.0.1",
            "INVOICER_HTTP_PORT": "0",
        }
    )
    if wait_tiers:
        env["INVOICER_WAIT_TIERS"] = wait_tiers
    env.update(extra or {})
    return env


async def consumer_counts(connection: AbstractConnection, queues: Sequence[str]) -> list[int]:
    """Consumers per queue as the broker reports them (-1: the queue does not exist)."""
    counts = []
    for name in queues:
        try:
            async with connection.channel() as ch:
                declared = await ch.declare_queue(name, passive=True)
                counts.append(declared.declaration_result.consumer_count or 0)
        except Exception:  # a passive declare of a missing queue closes its channel
            counts.append(-1)
    return counts


async def queue_depth(connection: AbstractConnection, queue: str) -> int:
    """Ready messages in `queue` (-1 when it does not exist)."""
    try:
        async with connection.channel() as ch:
            declared = await ch.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
    except Exception:
        return -1


@asynccontextmanager
async def service_process(
    env: Mapping[str, str], connection: AbstractConnection, *, within: float = 30.0
) -> AsyncIterator[Child]:
    """`python -m consumer run` with exactly `env`; ready once all stage queues have a
    consumer (at LOG_LEVEL=WARNING the service logs nothing on start-up)."""
    async with service_processes(env, connection, 1, within=within) as (child,):
        yield child


@asynccontextmanager
async def service_processes(
    env: Mapping[str, str], connection: AbstractConnection, count: int, *, within: float = 30.0
) -> AsyncIterator[tuple[Child, ...]]:
    """`count` service processes (replicas competing on the same queues); the first keeps
    `env`'s HTTP port, the others take free ones. Ready once each stage queue has `count`
    consumers."""
    prefix = env["INVOICER_QUEUE_PREFIX"]
    stages = [f"{prefix}.{s}" for s in ("triggers", "intents", "pdf")]
    argv = [sys.executable, "-m", "consumer", "run"]
    async with contextlib.AsyncExitStack() as stack:
        children = []
        for n in range(count):
            own = dict(env) if n == 0 else {**env, "INVOICER_HTTP_PORT": "0"}
            name = "service" if n == 0 else f"service{n + 1}"
            children.append(
                await stack.enter_async_context(child_process(name, argv, own, grace=15.0))
            )

        async def ready() -> bool:
            return all(c >= count for c in await consumer_counts(connection, stages))

        # Polled often: benches take the moment it consumes as the start of their clock.
        await wait_for(
            ready, within=within, what="the service to consume", child=children[0], poll=0.01
        )
        yield tuple(children)


# -- broker helpers ----------------------------------------------------------------------


async def declare_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Declare what the service would (same arguments), e.g. to pre-load a backlog."""
    async with connection.channel() as channel:
        await declare(channel, topology)


async def metric_sums(port: int, name: str, label: str) -> dict[str, tuple[float, float]]:
    """`label` value → (sum, count) of histogram `name` on the service's /metrics."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        for suffix, slot in (("_sum{", 0), ("_count{", 1)):
            if line.startswith(name + suffix):
                value = line[line.index(f'{label}="') + len(label) + 2 :].split('"', 1)[0]
                found.setdefault(value, [0.0, 0.0])[slot] = float(line.rsplit(" ", 1)[1])
    return {k: (v[0], v[1]) for k, v in found.items()}


async def connect(url: str = BROKER) -> AbstractConnection:
    return await aio_pika.connect(url, client_properties={"connection_name": "bench"})


@asynccontextmanager
async def broker(url: str = BROKER) -> AsyncIterator[AbstractConnection]:
    connection = await connect(url)
    try:
        yield connection
    finally:
        await connection.close()


async def cleanup(connection: AbstractConnection, topology: Topology, *extra_queues: str) -> None:
    """Delete every queue and exchange of `topology` (input/output included) and `extra_queues`,
    over a fresh connection (an interrupted run may have broken `connection`); shielded from a
    second Ctrl-C."""
    await asyncio.shield(_cleanup(_url(connection), topology, extra_queues))


async def delete_queues(connection: AbstractConnection, *names: str) -> None:
    """Delete these queues if they exist (fresh connection, shielded like `cleanup`)."""
    await asyncio.shield(_cleanup(_url(connection), None, names))


def _url(connection: AbstractConnection) -> str:
    # aio-pika's Connection keeps the URL it was opened with (not part of the ABC).
    return str(getattr(connection, "url", BROKER))


async def _cleanup(url: str, topology: Topology | None, queues: Sequence[str]) -> None:
    fresh = await aio_pika.connect(url, client_properties={"connection_name": "bench cleanup"})
    try:
        if topology is not None:
            await delete(fresh, topology, shared_exchanges=True)
        for name in queues:
            with contextlib.suppress(Exception):
                async with fresh.channel() as ch:
                    await ch.queue_delete(name)
    finally:
        await fresh.close()


async def publish_all(
    channel: AbstractChannel,
    exchange: str,
    messages: Iterable[tuple[str, bytes, str]],
    *,
    window: int = 500,
    on_publish: Callable[[str], object] | None = None,
) -> int:
    """Publish persistent (routing key, body, message id) triples, `window` unconfirmed at a
    time (the channel must have confirms on); returns how many were sent."""
    target = await channel.get_exchange(exchange, ensure=False)
    pending: list[Awaitable[Any]] = []
    sent = 0
    for key, body, message_id in messages:
        if on_publish is not None:
            on_publish(message_id)
        pending.append(target.publish(persistent(body, message_id), key))
        sent += 1
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending.clear()
    if pending:
        await asyncio.gather(*pending)
    return sent


def persistent(body: bytes, message_id: str | None) -> aio_pika.Message:
    """A persistent JSON message, as the fulfilment pipeline would send it."""
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
    )


def shipped_event(order_id: str, event_id: str) -> bytes:
    """An `order.shipped` trigger as the fulfilment pipeline sends it (DESIGN §5)."""
    return orjson.dumps({"event_type": "order.shipped", "event_id": event_id, "order_id": order_id})


@dataclass
class Capture:
    """Arrival time (monotonic) of the first `invoice.created` per order and the first
    `invoice.pdf_ready` per invoice, plus raw counts; fed by a queue on the output exchange."""

    created: dict[str, float] = field(default_factory=dict)  # order id → time
    ready: dict[str, float] = field(default_factory=dict)  # invoice id → time
    counts: dict[str, int] = field(default_factory=dict)  # routing key → messages
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        now = time.monotonic()
        key = message.routing_key or ""
        self.counts[key] = self.counts.get(key, 0) + 1
        body = orjson.loads(message.body)
        if key == "invoice.created":
            for order_id in body.get("order_ids", ()):
                self.created.setdefault(order_id, now)
        elif key == "invoice.pdf_ready":
            self.ready.setdefault(body["invoice_id"], now)
        self.changed.set()
        await message.ack()

    async def until(self, done: Callable[[Capture], bool], within: float) -> bool:
        """Wait until `done(self)` (True) or `within` seconds pass (False)."""
        deadline = time.monotonic() + within
        while not done(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))
        return True


@asynccontextmanager
async def capturing(
    connection: AbstractConnection, exchange: str, queue_name: str, *, prefetch: int = 500
) -> AsyncIterator[Capture]:
    """Bind a queue to the output exchange (declared here if absent) and capture into it."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(queue_name, durable=True)
    await queue.bind(ex, "invoice.*")
    cap = Capture()
    tag = await queue.consume(cap.on_message)
    try:
        yield cap
    finally:
        with contextlib.suppress(Exception):
            await queue.cancel(tag)
        with contextlib.suppress(Exception):
            await channel.queue_delete(queue_name)
        with contextlib.suppress(Exception):
            await channel.close()
