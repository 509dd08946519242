"""Helpers for pipeline tests: capture outbound events, run the service in-process or as a
subprocess, wait for conditions without fixed sleeps."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

import sandbox
from consumer.app import App, running
from consumer.settings import load_settings
from tests.support.children import spawn_options, track


@dataclass
class Captured:
    routing_key: str
    body: dict[str, Any]
    message_id: str | None
    correlation_id: str | None
    headers: dict[str, Any]
    type: str | None = None
    content_type: str | None = None
    persistent: bool = False


def captured(message: AbstractIncomingMessage, body: dict[str, Any]) -> Captured:
    """The parts of a delivery a test asserts on."""
    return Captured(
        message.routing_key or "",
        body,
        message.message_id,
        message.correlation_id,
        dict(message.headers or {}),
        message.type,
        message.content_type,
        message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
    )


@dataclass
class Capture:
    """Every message routed to one test queue, in arrival order."""

    queue: AbstractQueue
    messages: list[Captured] = field(default_factory=list)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            self.messages.append(captured(message, json.loads(message.body)))

    def of(self, routing_key: str) -> list[Captured]:
        return [m for m in self.messages if m.routing_key == routing_key]


@asynccontextmanager
async def capture(
    connection: AbstractRobustConnection, exchange: str, queue_name: str, key: str = "#"
) -> AsyncIterator[Capture]:
    """Bind `queue_name` to `exchange` (declared topic if absent) and collect what arrives."""
    channel = await connection.channel()
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(queue_name, durable=True, auto_delete=False)
    await queue.bind(ex, key)
    cap = Capture(queue)
    tag = await queue.consume(cap.on_message)
    try:
        yield cap
    finally:
        await queue.cancel(tag)
        await channel.queue_delete(queue_name)
        await channel.close()


async def dead_letters(connection: AbstractRobustConnection, queue: str) -> list[Captured]:
    """Drain `queue` (the dead queue) and return what it held, with headers."""
    out: list[Captured] = []
    async with connection.channel() as channel:
        q = await channel.declare_queue(queue, passive=True)
        while (message := await q.get(fail=False)) is not None:
            await message.ack()
            try:
                body = json.loads(message.body)
            except ValueError:
                body = {"_raw": message.body.decode(errors="replace")}
            if not isinstance(body, dict):
                body = {"_raw": body}
            out.append(captured(message, body))
    return out


async def collect_dead(
    connection: AbstractRobustConnection, queue: str, count: int, *, within: float = 20.0
) -> list[Captured]:
    """Drain the dead queue until at least `count` messages arrived (fail after `within` s)."""
    found: list[Captured] = []

    async def enough() -> bool:
        found.extend(await dead_letters(connection, queue))
        return len(found) >= count

    await eventually(enough, within=within, what=f"{count} dead letters in {queue}")
    return found


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, within: float = 20.0, what: str = "condition"
) -> None:
    """Poll `check` (plain or async) until true; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def all_delivered(connection: AbstractRobustConnection, queue: str) -> bool:
    """True once `queue` holds no ready message: everything in it went to a consumer."""
    async with connection.channel() as channel:
        declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count == 0


@asynccontextmanager
async def service(env: Mapping[str, str], **kwargs: Any) -> AsyncIterator[App]:
    """The service in this process, with settings from `env` only."""
    async with running(load_settings(env, env_file=None), **kwargs) as app:
        yield app


class ServiceProcess:
    """`python -m consumer run` in a subprocess with exactly `env` (plus PATH and HOME)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
        self.env.update(env)
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *, ready_timeout: float = 20.0, wait: bool = True) -> ServiceProcess:
        """Spawn the service; with `wait`, return once it logged that it runs."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "consumer",
            "run",
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            **spawn_options(),  # dies with the test run, even when pytest is killed
        )
        track(self.proc.pid)
        self._reader = asyncio.ensure_future(self._read())
        if not wait:
            return self
        await eventually(
            lambda: any("invoicer running" in line for line in self.lines) or self.exited,
            within=ready_timeout,
            what="the service to start",
        )
        if self.exited:
            raise AssertionError("service exited at start-up:\n" + "\n".join(self.lines[-30:]))
        return self

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    async def wait(self, within: float = 30.0) -> int:
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            raise AssertionError(
                f"the service did not exit within {within:g} s; its log ends:\n{self.log_tail()}"
            ) from None
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def terminate(self, within: float = 30.0) -> int:
        """SIGTERM and wait for the drain to finish."""
        assert self.proc is not None
        if not self.exited:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(within)

    async def kill(self) -> None:
        if self.proc is not None and not self.exited:
            self.proc.kill()
            await self.wait()

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])


def settled(sb: sandbox.Sandbox, out: Capture) -> bool:
    """Every invoiceable item is invoiced, and every invoice was announced with its PDF."""
    invoices = {i.id for i in sb.ledger.invoices}
    created = {m.body["invoice"]["id"] for m in out.of("invoice.created")}
    ready = {m.body["invoice_id"] for m in out.of("invoice.pdf_ready")}
    missing = any(sb.ledger.never_invoiced().values())
    return not missing and invoices == created == ready


# Fields a repeated event may legitimately vary in: the trigger it answered, and for
# invoice.pdf_ready the moment the check that saw the PDF was due.
_MAY_VARY = {
    "invoice.created": {"correlation_id"},
    "invoice.pdf_ready": {"correlation_id", "occurred_at"},
}


def assert_exactly_once(sb: sandbox.Sandbox, out: Capture) -> None:
    """Each item invoiced once; each fact announced under one event_id (= message_id)."""
    assert sb.ledger.invoiced_more_than_once() == {}
    assert not any(sb.ledger.never_invoiced().values())
    created = [m.body["invoice"]["id"] for m in out.of("invoice.created")]
    assert sorted(set(created)) == sorted(i.id for i in sb.ledger.invoices)
    for kind, may_vary in _MAY_VARY.items():
        # Copies share the deterministic event_id, so a consumer deduping on it sees one fact.
        first: dict[str, dict[str, Any]] = {}
        for m in out.of(kind):
            assert m.message_id == m.body["event_id"]
            body = {k: v for k, v in m.body.items() if k not in may_vary}
            assert first.setdefault(m.body["event_id"], body) == body, f"{kind} copies differ"
        assert len(first) == len(sb.ledger.invoices), kind


async def finish_with_fresh_process(
    env: Mapping[str, str], sb: sandbox.Sandbox, out: Capture, *, within: float = 30.0
) -> None:
    """A clean `invoicer run` finishes what is left, then drains and exits 0."""
    survivor = await ServiceProcess(env).start()
    try:
        await eventually(lambda: settled(sb, out), within=within, what="the work left over")
    finally:
        assert await survivor.terminate() == 0, survivor.log_tail()
