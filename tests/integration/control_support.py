"""A ConsumerSet over real aio-pika consumers whose handlers the test controls (the service's
own, consumer/amqp, is exercised end to end in test_health_e2e.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]
QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}


class TestConsumerSet:
    """One consumer per queue on one channel; pause cancels, resume consumes again."""

    __test__ = False

    def __init__(self, channel: AbstractChannel, handlers: Mapping[str, Handler]) -> None:
        self._channel = channel
        self._handlers = dict(handlers)
        self._queues: dict[str, AbstractQueue] = {}
        self._tags: dict[str, str] = {}
        self.resubscribed: list[str] = []
        self._running = False
        self._underlay: aiormq.Channel | None = None

    def expected(self) -> Mapping[str, int]:
        # Like the runtime's: nothing is expected before start() or after stop().
        return dict.fromkeys(self._handlers, 1) if self._running else {}

    async def stop(self) -> None:
        await self.pause()
        self._running = False

    def registered(self) -> Mapping[str, bool]:
        # aiormq drops a consumer from the channel when the broker cancels it.
        assert self._underlay is not None, "start() first"
        return {name: self._tags.get(name) in self._underlay.consumers for name in self._handlers}

    def tag(self, name: str) -> str:
        return self._tags[name]

    def queue(self, name: str) -> AbstractQueue:
        return self._queues[name]

    async def start_underlay(self) -> None:
        # The aiormq channel under a plain channel changes only when we reopen it.
        underlay = await self._channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel)
        self._underlay = underlay

    async def start(self) -> None:
        self._running = True
        await self.start_underlay()
        for name in self._handlers:
            await self._consume(name)

    async def _consume(self, name: str) -> None:
        if self._channel.is_closed:  # a failed declare closes the channel: start afresh
            await self._channel.reopen()
            await self.start_underlay()
        queue = await self._channel.declare_queue(name, durable=True, arguments=QUORUM)
        self._queues[name] = queue
        self._tags[name] = await queue.consume(self._handlers[name])

    async def resubscribe(self, queue: str) -> None:
        self.resubscribed.append(queue)
        self._tags.pop(queue, None)
        await self._consume(queue)

    async def pause(self) -> None:
        for name, tag in list(self._tags.items()):
            await self._queues[name].cancel(tag)
            del self._tags[name]

    async def resume(self) -> None:
        for name in self._handlers:
            if name not in self._tags:
                await self._consume(name)


async def delete_queues(names: list[str], url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
