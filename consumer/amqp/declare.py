"""Declare a `Topology` on the broker (idempotent), or tear down the parts a prefix owns."""

from __future__ import annotations

import contextlib
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aiormq.exceptions import ChannelPreconditionFailed

from consumer.amqp.topology import Topology

log = logging.getLogger(__name__)

_TYPES = {
    "topic": aio_pika.ExchangeType.TOPIC,
    "direct": aio_pika.ExchangeType.DIRECT,
    "fanout": aio_pika.ExchangeType.FANOUT,
}


class TopologyMismatch(Exception):
    """An exchange or queue already exists with other properties; declaring never changes it."""


async def declare(channel: AbstractChannel, topology: Topology) -> dict[str, AbstractQueue]:
    """Declare every exchange, queue and binding (idempotent); returns the queues by name."""
    # An entity that exists with other arguments (say, another x-delivery-limit) raises
    # TopologyMismatch naming it: the operator migrates it deliberately, we never mutate it.
    try:
        exchanges = {
            e.name: await channel.declare_exchange(e.name, _TYPES[e.type], durable=True)
            for e in topology.exchanges
        }
        queues = {
            q.name: await channel.declare_queue(q.name, durable=True, arguments=dict(q.arguments))
            for q in topology.queues
        }
    except ChannelPreconditionFailed as exc:
        raise TopologyMismatch(
            f"the broker holds an entity that differs from this configuration: {exc}. "
            "Declaring never changes an existing queue or exchange; migrate it "
            "(docs/operations.md, Upgrading) or use another INVOICER_QUEUE_PREFIX."
        ) from None
    for b in topology.bindings:
        await queues[b.queue].bind(exchanges[b.exchange], b.routing_key)
    log.info(
        "topology declared",
        extra={"prefix": topology.prefix, "queues": len(queues), "exchanges": len(exchanges)},
    )
    return queues


async def delete(
    connection: AbstractConnection, topology: Topology, *, shared_exchanges: bool = False
) -> None:
    """Delete the queues and prefix-owned exchanges (tests; never done by the service)."""
    names = [e.name for e in topology.exchanges]
    if not shared_exchanges:
        names = list(topology.owned_exchanges)
    for queue in topology.queues:
        # A fresh channel each time: a failed delete closes the channel it ran on.
        with contextlib.suppress(Exception):
            async with connection.channel() as ch:
                await ch.queue_delete(queue.name)
    for name in names:
        with contextlib.suppress(Exception):
            async with connection.channel() as ch:
                await ch.exchange_delete(name)
