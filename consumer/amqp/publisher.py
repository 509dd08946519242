"""Confirmed publishing: every message is persistent and mandatory, and only counts once the
broker confirmed it. A nack, an unroutable return, a timeout or a lost channel is `PublishFailed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeGuard

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import PublishError
from pamqp.commands import Basic

from consumer.amqp.topology import Topology
from consumer.metrics import Metrics
from handlers.errors import DeadReason
from handlers.ports import Emit, Forward, Stage

log = logging.getLogger(__name__)

JSON = "application/json"
APP_ID = "invoicer"
PERSISTENT = 2  # delivery_mode
ATTEMPT_HEADER = "invoicer-attempt"
DEAD_REASON_HEADER = "invoicer-dead-reason"
DEAD_DETAIL_HEADER = "invoicer-dead-detail"
SOURCE_QUEUE_HEADER = "invoicer-source-queue"
REOPEN_POLL = 0.02
MAX_DETAIL = 1000  # header values travel with every copy; keep them readable, not huge
# Set by RabbitMQ (dead-lettering, quorum delivery counts). Since 3.13 x- headers belong to the
# broker and 4.x ignores them from publishers, so a copy we publish starts without them.
BROKER_HEADERS = (
    "x-death",
    "x-first-death-",
    "x-last-death-",
    "x-delivery-count",
    "x-acquired-count",
)

HeaderValue = str | int | float | bool | bytes | datetime | None
Role = Literal["output", "input", "internal"]


class PublishFailed(Exception):
    """The broker did not confirm the message (nack, return, timeout, or connection lost)."""


class Unroutable(PublishFailed):
    """The broker returned a mandatory publish: no queue is bound for its routing key."""


def _where(exchange: str, routing_key: str) -> str:
    return f"{exchange or '(default)'}/{routing_key}"


class Publisher:
    """Publishes on one confirm channel; all routing decisions come from the `Topology`."""

    def __init__(
        self,
        channel: AbstractChannel,
        topology: Topology,
        *,
        timeout: timedelta,
        metrics: Metrics | None = None,
    ) -> None:
        self._channel = channel
        self._topology = topology
        self._timeout = timeout.total_seconds()
        self._metrics = metrics

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None,
        correlation_id: str | None,
        type: str | None,  # the AMQP property's name
        headers: Mapping[str, HeaderValue] | None = None,
        content_type: str | None = JSON,
        role: Role = "internal",
    ) -> None:
        """Publish and wait for the broker's confirm; raise PublishFailed otherwise."""
        properties = Basic.Properties(
            headers=dict(headers or {}),
            content_type=content_type,
            delivery_mode=PERSISTENT,
            message_id=message_id,
            correlation_id=correlation_id,
            message_type=type,
            timestamp=datetime.now(UTC),
            app_id=APP_ID,
        )
        try:
            # The outer bound also covers waiting for a robust channel that is reconnecting.
            async with asyncio.timeout(self._timeout):
                await self._until_open()
                # What aio-pika's Exchange.publish does, minus its Message object, whose
                # guarded attributes and conversion to these properties cost more than the
                # publish itself (the profile); the underlay is looked up per publish, so a
                # robust channel that reconnected is used as it is now.
                channel = await self._channel.get_underlay_channel()
                result = await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                    timeout=self._timeout,
                )
        except PublishError as exc:  # returned (the channel raises on returns): no route
            where = _where(exchange, routing_key)
            raise Unroutable(f"unroutable: {where} has no bound queue ({exc})"[:300]) from exc
        except Exception as exc:  # aiormq raises several families; all mean "not confirmed"
            where = _where(exchange, routing_key)
            raise PublishFailed(f"publish to {where} failed: {type_name(exc)} {exc}"[:300]) from exc
        if isinstance(result, DeliveredMessage):  # returned, on a channel that does not raise
            raise Unroutable(f"unroutable: {_where(exchange, routing_key)} has no bound queue")
        if self._metrics is not None:
            self._metrics.child(self._metrics.events_published, role, routing_key).inc()

    async def _until_open(self) -> None:
        # A channel error (say, a missing exchange) closed the channel; aio-pika's robust
        # channel reopens it within moments, so wait for that rather than fail every publish.
        for _ in range(int(self._timeout / REOPEN_POLL) + 1):
            if not self._channel.is_closed:
                return
            await asyncio.sleep(REOPEN_POLL)

    async def emit(self, emit: Emit) -> None:
        """An outbound event on the output exchange, routing key = its event type."""
        await self.publish(
            self._topology.output_exchange,
            emit.event_type,
            emit.event.model_dump_json().encode(),
            message_id=emit.event_id,
            correlation_id=emit.correlation_id,
            type=emit.event_type,
            role="output",
        )

    async def forward(self, forward: Forward) -> None:
        """A message for a stage, now or through the wait tier that covers `forward.delay`."""
        await self.to_stage(
            forward.stage,
            forward.message.model_dump_json().encode(),
            message_id=forward.message_id,
            correlation_id=forward.correlation_id,
            type=f"invoicer.{forward.stage}",
            delay=forward.delay,
            headers={ATTEMPT_HEADER: 1},
        )

    async def to_stage(
        self,
        stage: Stage,
        body: bytes,
        *,
        message_id: str | None,
        correlation_id: str | None,
        type: str | None,
        delay: timedelta | None,
        headers: Mapping[str, HeaderValue],
        content_type: str | None = JSON,
    ) -> timedelta | None:
        """Publish to a stage queue, via a wait tier when delayed; returns the tier used."""
        queue = self._topology.stage_queue(stage)
        tier = None
        exchange = self._topology.route_exchange
        if delay is not None and delay > timedelta(0):
            tier = self._topology.tier_for(delay)
            exchange = self._topology.wait_name(tier)
        await self.publish(
            exchange,
            queue,
            body,
            message_id=message_id,
            correlation_id=correlation_id,
            type=type,
            headers=headers,
            content_type=content_type,
        )
        return tier

    async def publish_trigger(self, body: bytes, *, routing_key: str, message_id: str) -> None:
        """A trigger from a webhook, straight into this installation's triggers queue."""
        await self.publish(
            self._topology.route_exchange,
            self._topology.stage_queue("triggers"),
            body,
            message_id=message_id,
            correlation_id=message_id,
            type=routing_key,
            headers={ATTEMPT_HEADER: 1},
            role="input",
        )

    async def dead_letter(
        self,
        message: AbstractIncomingMessage,
        *,
        source_queue: str,
        reason: DeadReason,
        detail: str,
    ) -> None:
        """Copy `message` (body, properties, headers) to the dead queue with why it died."""
        headers = carried_headers(message)
        headers[DEAD_REASON_HEADER] = reason
        headers[DEAD_DETAIL_HEADER] = detail[:MAX_DETAIL]
        headers[SOURCE_QUEUE_HEADER] = source_queue
        await self.publish(
            self._topology.route_exchange,
            self._topology.dead_queue,
            message.body,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            headers=headers,
            content_type=message.content_type,
        )


def carried_headers(message: AbstractIncomingMessage) -> dict[str, HeaderValue]:
    """The headers a retry or dead copy keeps: plain values, none the broker sets."""
    return {
        k: v
        for k, v in (message.headers or {}).items()
        if _plain(v) and not k.startswith(BROKER_HEADERS)
    }


def _plain(value: object) -> TypeGuard[HeaderValue]:
    # Nested tables and arrays are the broker's bookkeeping; they stay behind.
    return isinstance(value, str | int | float | bool | bytes | datetime) or value is None


def type_name(exc: BaseException) -> str:
    return type(exc).__name__
