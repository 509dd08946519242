"""The output capture: arrival times of invoice.created and invoice.pdf_ready on a queue bound
to the output exchange."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aio_pika
import orjson
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage


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
