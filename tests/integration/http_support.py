"""Helpers for the HTTP tests: a test-only confirmed publisher, raw-socket HTTP, and a per-test
exchange with a counting queue (the cuttable TCP proxy is tests.support.tcp_proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from uuid import uuid4

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from consumer.http.health import Check
from consumer.http.signature import sign
from tests.support.tcp_proxy import BROKER_HOST, BROKER_PORT

BROKER_URL = f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/"


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid4().hex[:10]}"


class TestTriggerPublisher:
    """Test-only TriggerPublisher: confirmed, mandatory publish to an exchange."""

    __test__ = False

    def __init__(self, url: str, exchange: str, *, timeout: float = 2.0) -> None:
        self._url = url
        self._exchange_name = exchange
        self._timeout = timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self.published = 0

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url, reconnect_interval=0.2)
        self._channel = await self._connection.channel(publisher_confirms=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish_trigger(self, body: bytes, *, routing_key: str, message_id: str) -> None:
        assert self._channel is not None
        exchange = await self._channel.get_exchange(self._exchange_name, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                message_id=message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
            mandatory=True,
            timeout=self._timeout,
        )
        self.published += 1


@dataclass
class InputExchange:
    """A per-test topic exchange with a queue bound to every routing key."""

    name: str
    queue: AbstractQueue

    async def drain(self, wait: float = 0.3) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Every message that arrived (waiting briefly for stragglers), acked."""
        await asyncio.sleep(wait)
        got = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            got.append(message)
        return got


@contextlib.asynccontextmanager
async def input_exchange() -> AsyncIterator[InputExchange]:
    connection = await aio_pika.connect(BROKER_URL)
    try:
        channel = await connection.channel()
        name = unique("tx")
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)
        # Durable: RabbitMQ 4.3 refuses transient non-exclusive queues by default.
        queue = await channel.declare_queue(f"{name}.q", durable=True)
        await queue.bind(exchange, "#")
        try:
            yield InputExchange(name, queue)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await exchange.delete()
    finally:
        await connection.close()


async def raw_request(port: int, data: bytes, *, read_timeout: float = 5.0) -> bytes:
    """Send raw bytes to the server and return whatever it answers before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(read_timeout):
            return await reader.read(65536)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def envelope(
    event: str = "IN_TRANSIT",
    *,
    message_id: str | None = None,
    order_id: str = "ord_1",
    data: dict[str, object] | None = None,
) -> bytes:
    """A webhook body as Afosto serializes it (compact, HTML escaping off, no trailing newline)."""
    body = {
        "event": event,
        "data": data if data is not None else {"order_id": order_id, "id": "del_1"},
        "entity_id": "del_1" if event in ("IN_TRANSIT", "DELIVERED") else order_id,
        "entity_type": "delivery" if event in ("IN_TRANSIT", "DELIVERED") else "order",
        "message_id": message_id or unique("msg_"),
        "triggered_at": 1714000000000,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Afosto-Hmac-Sha256": sign(body, secret.encode()),
    }


async def drip_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, *, every: float
) -> int | None:
    """Send `data` one byte per `every` s; bytes sent when the server hung up, else None."""
    sent = 0
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    if await reader.read(1) == b"":
                        return sent
    except ConnectionError:
        return sent
    return None


class AlwaysReady:
    """A readiness source for HTTP tests that are not about readiness."""

    async def readiness(self) -> Sequence[Check]:
        return [Check("static", True)]
