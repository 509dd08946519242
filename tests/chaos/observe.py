"""What the harness sees on the broker: every outbound event (a capture queue bound to the
output exchange) and every dead letter, each with its arrival time."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from consumer.amqp.publisher import DEAD_REASON_HEADER


@dataclass
class Seen:
    routing_key: str
    raw: bytes
    body: dict[str, Any]
    message_id: str | None
    headers: dict[str, Any]
    at: float

    @property
    def reason(self) -> str:
        return str(self.headers.get(DEAD_REASON_HEADER, ""))

    def text(self) -> str:
        """Everything the message carries, for the secret grep."""
        return (
            self.raw.decode(errors="replace")
            + json.dumps(self.headers, default=str)
            + (self.message_id or "")
        )


@dataclass
class Tap:
    """Collects every message of one queue (acked after it is recorded)."""

    queue: AbstractQueue
    messages: list[Seen] = field(default_factory=list)
    tag: str = ""

    async def stop(self) -> None:
        """Cancel the consumer (before its queue is deleted)."""
        if self.tag:
            await self.queue.cancel(self.tag)
            self.tag = ""

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            body = json.loads(message.body)
        except ValueError:
            body = {}
        self.messages.append(
            Seen(
                message.routing_key or "",
                message.body,
                body if isinstance(body, dict) else {},
                message.message_id,
                dict(message.headers or {}),
                time.monotonic(),
            )
        )
        await message.ack()

    def of(self, routing_key: str) -> list[Seen]:
        return [m for m in self.messages if m.routing_key == routing_key]

    @property
    def last_at(self) -> float:
        return max((m.at for m in self.messages), default=0.0)


async def tap_output(connection: AbstractRobustConnection, exchange: str, name: str) -> Tap:
    """A durable queue bound to `exchange` with '#', consumed into a Tap."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=200)
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(name, durable=True, auto_delete=False)
    await queue.bind(ex, "#")
    tap = Tap(queue)
    tap.tag = await queue.consume(tap.on_message)
    return tap


async def tap_queue(connection: AbstractRobustConnection, name: str) -> Tap:
    """Consume an existing queue (the dead-letter queue) into a Tap."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=200)
    queue = await channel.declare_queue(name, passive=True)
    tap = Tap(queue)
    tap.tag = await queue.consume(tap.on_message)
    return tap
