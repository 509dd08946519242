"""The demo's dealings with the broker: reachability, dead letters, leaving nothing behind."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import ChannelNotFoundEntity, ProbableAuthenticationError

from consumer.amqp.topology import Topology
from consumer.settings import redact_url

log = logging.getLogger(__name__)

START_HINT = "rabbitmq-server -detached"


class BrokerUnreachable(Exception):
    """RabbitMQ did not answer; the message says where and how to start it."""


async def connect_or_explain(url: str, wait_s: float = 5.0) -> AbstractConnection:
    """A plain connection, or BrokerUnreachable naming the (redacted) URL and the fix."""
    try:
        return await aio_pika.connect(url, timeout=wait_s)
    except ProbableAuthenticationError:
        raise BrokerUnreachable(
            f"RabbitMQ at {redact_url(url)} refused the user name or password.\n"
            "Set INVOICER_AMQP_URL (or --amqp-url) to a user the broker knows; the local "
            "default is guest/guest, which RabbitMQ accepts from localhost only."
        ) from None
    except (OSError, TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BrokerUnreachable(
            f"RabbitMQ is not reachable at {redact_url(url)} ({reason}).\n"
            f"Start it with:  {START_HINT}\n"
            "(wait until `rabbitmq-diagnostics -q check_port_connectivity` succeeds), "
            "or point INVOICER_AMQP_URL at a running broker."
        ) from None


@dataclass(frozen=True)
class QueueDepths:
    """Messages (ready + unacked) per queue that exists; missing queues are left out."""

    depths: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.depths.values())


async def queue_depths(connection: AbstractConnection, names: list[str]) -> QueueDepths:
    """Ask the broker (passive declares) how many messages each queue holds."""
    depths: dict[str, int] = {}
    for name in names:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
            depths[name] = queue.declaration_result.message_count or 0
        except ChannelNotFoundEntity:
            continue
        finally:
            if not channel.is_closed:
                await channel.close()
    return QueueDepths(depths)


async def read_dead_letters(connection: AbstractConnection, dead_queue: str) -> Counter[str]:
    """Take every message out of the dead-letter queue and count them by reason."""
    reasons: Counter[str] = Counter()
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(dead_queue, passive=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            headers = message.headers or {}
            reason = headers.get("invoicer-dead-reason") or headers.get("x-first-death-reason")
            reasons[_text(reason) or "unknown"] += 1
    except ChannelNotFoundEntity:
        pass
    finally:
        if not channel.is_closed:
            await channel.close()
    return reasons


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


async def remove_topology(url: str, topology: Topology, extra_queues: list[str]) -> list[str]:
    """Delete every queue and exchange the demo made; returns what could not be deleted."""
    failed: list[str] = []
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel: AbstractChannel = await connection.channel()
        names = [q.name for q in topology.queues] + extra_queues
        for name in names:
            channel = await _delete(connection, channel, "queue", name, failed)
        exchanges = list(topology.owned_exchanges)
        exchanges += [topology.input_exchange, topology.output_exchange]
        for name in exchanges:
            channel = await _delete(connection, channel, "exchange", name, failed)
        if not channel.is_closed:
            await channel.close()
    finally:
        await connection.close()
    return failed


async def _delete(
    connection: AbstractConnection,
    channel: AbstractChannel,
    kind: str,
    name: str,
    failed: list[str],
) -> AbstractChannel:
    if channel.is_closed:
        channel = await connection.channel()
    try:
        if kind == "queue":
            await channel.queue_delete(name)
        else:
            await channel.exchange_delete(name)
    except ChannelNotFoundEntity:
        pass  # already gone
    except (TimeoutError, aio_pika.exceptions.AMQPError, OSError) as exc:
        log.warning("could not delete %s %s: %s", kind, name, exc)
        failed.append(name)
    return channel


async def leftovers(url: str, topology: Topology) -> list[str]:
    """Queues of this topology that still exist (empty after a clean run)."""
    connection = await aio_pika.connect(url, timeout=10)
    try:
        found = await queue_depths(connection, [q.name for q in topology.queues])
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
    return sorted(found.depths)
