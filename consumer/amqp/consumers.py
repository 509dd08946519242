"""The stage consumers of one process: start, pause, resume, re-subscribe, stop.

Implements consumer.control.ConsumerSet. Queue objects and consumer tags stay strongly
referenced here for the app's lifetime; aio-pika's robust channel re-declares the queues and
re-consumes with the same tags after a reconnect, and the controller's watchdog asks the
broker to confirm it (re-subscribing through `resubscribe` when it did not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping

import aiormq.abc
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustChannel

from consumer.amqp.consume import Processor
from consumer.amqp.topology import Topology
from handlers.ports import Route, Stage

log = logging.getLogger(__name__)
CANCEL_TIMEOUT = 5.0


class _Subscription:
    def __init__(self, queue: AbstractQueue, route: Route, processor: Processor, tag: str):
        self.queue = queue
        self.route = route
        self.tag = tag
        self.callback = processor.callback(route)
        self.active = False


class Consumers:
    """One consumer per stage queue, all on one channel, each with the same prefetch."""

    def __init__(
        self,
        channel: AbstractChannel,
        topology: Topology,
        routes: Mapping[Stage, Route],
        processor: Processor,
        *,
        prefetch: int,
    ) -> None:
        self._channel = channel
        self._topology = topology
        self._routes = routes
        self._processor = processor
        self._prefetch = prefetch
        self._subs: dict[str, _Subscription] = {}
        self._lock = asyncio.Lock()
        self._wanted = False
        self._stopped = False  # the drain began: nothing may consume again
        self._instance = uuid.uuid4().hex[:8]
        self._underlay: aiormq.abc.AbstractChannel | None = None

    async def start(self, queues: Mapping[str, AbstractQueue]) -> None:
        """Set the prefetch and consume every routed stage queue (declared beforehand)."""
        # Quorum queues refuse global QoS, so the prefetch is per consumer; the processor's
        # semaphore keeps the total in flight at `concurrency`.
        await self._channel.set_qos(prefetch_count=self._prefetch)
        await self._refresh_underlay()
        if isinstance(self._channel, AbstractRobustChannel):
            self._channel.reopen_callbacks.add(self._refresh_underlay)
        for stage, route in self._routes.items():
            name = self._topology.stage_queue(stage)
            tag = f"invoicer.{self._instance}.{stage}"
            self._subs[name] = _Subscription(queues[name], route, self._processor, tag)
        await self.resume()

    def expected(self) -> Mapping[str, int]:
        """Queue → consumers this process should hold there (none while paused or stopped)."""
        return {name: 1 for name in self._subs} if self._wanted else {}

    def registered(self) -> dict[str, bool]:
        """Which queues have a live consumer of THIS process right now (the broker's count
        includes other replicas); a broker-side cancel shows up here at once."""
        underlay = self._underlay
        if underlay is None or underlay.is_closed or self._channel.is_closed:
            return dict.fromkeys(self._subs, False)
        # aiormq drops a tag from `consumers` when the broker cancels it (queue deleted...).
        consumers: Mapping[str, object] = getattr(underlay, "consumers", {})
        return {name: sub.active and sub.tag in consumers for name, sub in self._subs.items()}

    async def _refresh_underlay(self, *_: object) -> None:
        # A robust channel swaps its protocol channel on every reopen; keep the current one.
        self._underlay = await self._channel.get_underlay_channel()

    async def pause(self) -> None:
        """Cancel every consumer; deliveries already received still finish."""
        async with self._lock:
            self._wanted = False
            # Concurrently: during an outage each cancel waits out its timeout.
            await asyncio.gather(*(self._cancel(sub) for sub in self._subs.values()))

    async def resume(self) -> None:
        """Consume every queue again (idempotent; a no-op once stopped)."""
        async with self._lock:
            if self._stopped:
                return
            self._wanted = True
            for sub in self._subs.values():
                if not sub.active:
                    await sub.queue.consume(sub.callback, consumer_tag=sub.tag)
                    sub.active = True

    async def resubscribe(self, queue: str) -> None:
        """Consume `queue` afresh: re-declare it (the broker may have lost it), new tag."""
        async with self._lock:
            sub = self._subs[queue]
            await self._cancel(sub)
            if not self._wanted:
                return
            await self._redeclare(sub.queue)
            sub.tag = f"invoicer.{self._instance}.{sub.route.stage}.{uuid.uuid4().hex[:4]}"
            await sub.queue.consume(sub.callback, consumer_tag=sub.tag)
            sub.active = True
            log.warning("re-subscribed to %s", queue)

    async def _redeclare(self, queue: AbstractQueue) -> None:
        # The queue may have been deleted with its bindings: declare both again.
        await queue.declare()
        for binding in self._topology.bindings:
            if binding.queue != queue.name:
                continue
            (exchange,) = [e for e in self._topology.exchanges if e.name == binding.exchange]
            await self._channel.declare_exchange(exchange.name, exchange.type, durable=True)
            await queue.bind(exchange.name, binding.routing_key)

    async def stop(self) -> None:
        """Stop taking deliveries for good (the drain's first step)."""
        # A circuit that probes Afosto successfully during the drain would otherwise resume.
        self._stopped = True
        await self.pause()

    @staticmethod
    async def _cancel(sub: _Subscription) -> None:
        if not sub.active:
            return
        sub.active = False
        # The broker may already have dropped the consumer (queue deleted, channel closed), and
        # while the connection is down the RPC would wait for it: aio-pika forgets the tag
        # first, so a reconnect never restores it either way.
        offline = sub.queue.channel.is_closed
        with contextlib.suppress(Exception):
            async with asyncio.timeout(0.1 if offline else CANCEL_TIMEOUT):
                await sub.queue.cancel(sub.tag)
