"""bench/ceiling.py's worker, a child process like the service (`python -m bench.ceiling
--worker PREFIX`): the service's three stages on its quorum queues, with no API work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from bench.amqp import persistent
from bench.service import Names
from handlers.ports import Stage

# Roughly the sizes the service sends: an intent, a full invoice.created, a check, pdf_ready.
PAD_INTENT, PAD_CREATED, PAD_CHECK, PAD_READY = 200, 1800, 150, 250
Callback = Callable[[AbstractIncomingMessage], Awaitable[None]]


def padded(fields: dict[str, object], pad: int) -> bytes:
    """`fields` as JSON plus `pad` bytes of padding (the PAD_* sizes above)."""
    return orjson.dumps({**fields, "pad": "x" * pad})


async def worker(prefix: str, concurrency: int, prefetch: int, broker: str) -> None:
    """Run the three stages on `prefix`'s queues until killed."""
    names = Names(prefix)
    topology = names.topology()
    connection = await aio_pika.connect(broker)
    publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    consume_channel = await connection.channel()
    await consume_channel.set_qos(prefetch_count=prefetch)
    route = await publish_channel.get_exchange(topology.route_exchange, ensure=False)
    out = await publish_channel.get_exchange(topology.output_exchange, ensure=False)
    slots = asyncio.Semaphore(concurrency)
    intents, pdf = topology.stage_queue("intents"), topology.stage_queue("pdf")

    async def plan(incoming: AbstractIncomingMessage) -> None:
        async with slots:
            event = orjson.loads(incoming.body)
            intent = padded({"order_id": event["order_id"]}, PAD_INTENT)
            await route.publish(persistent(intent, incoming.message_id), intents)
            await incoming.ack()

    async def issue(incoming: AbstractIncomingMessage) -> None:
        async with slots:
            order_id = orjson.loads(incoming.body)["order_id"]
            created = padded({"order_ids": [order_id]}, PAD_CREATED)
            await out.publish(persistent(created, incoming.message_id), "invoice.created")
            check = padded({"invoice_id": f"inv-{order_id}"}, PAD_CHECK)
            await route.publish(persistent(check, incoming.message_id), pdf)
            await incoming.ack()

    async def check(incoming: AbstractIncomingMessage) -> None:
        async with slots:
            invoice_id = orjson.loads(incoming.body)["invoice_id"]
            ready = padded({"invoice_id": invoice_id}, PAD_READY)
            await out.publish(persistent(ready, incoming.message_id), "invoice.pdf_ready")
            await incoming.ack()

    stages: tuple[tuple[Stage, Callback], ...] = (
        ("triggers", plan),
        ("intents", issue),
        ("pdf", check),
    )
    for stage, callback in stages:
        queue = await consume_channel.get_queue(topology.stage_queue(stage), ensure=False)
        await queue.consume(callback)
    await asyncio.Event().wait()  # until killed
