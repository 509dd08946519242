"""The broker side of a bench: its URL, fresh queue prefixes, connections, declaring and
deleting (shielded from Ctrl-C), consumer counts, and fast confirmed publishing."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection

from consumer.amqp.declare import declare, delete
from consumer.amqp.topology import Topology

BROKER = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def fresh_prefix(name: str) -> str:
    """A queue prefix no other run uses, e.g. `bench-ceiling-1a2b3c`."""
    return f"bench-{name}-{uuid4().hex[:6]}"


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


async def declare_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Declare what the service would (same arguments), e.g. to pre-load a backlog."""
    async with connection.channel() as channel:
        await declare(channel, topology)


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
