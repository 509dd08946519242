"""The confirmed publisher on the real broker: confirmed, unroutable, missing exchange,
broker unreachable (each a PublishFailed, never a silent loss), then working again."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from aio_pika.abc import AbstractRobustConnection
from pydantic import SecretStr

from consumer.amqp.connection import connect
from consumer.amqp.declare import declare
from consumer.amqp.publisher import ATTEMPT_HEADER, Publisher, PublishFailed
from consumer.amqp.topology import build
from consumer.settings import Settings
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup")]


async def test_publish_outcomes(settings: Settings, amqp: AbstractRobustConnection) -> None:
    topology = build(settings.amqp)
    async with amqp.channel() as channel:
        await declare(channel, topology)
    connection = await connect(settings.amqp)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        publisher = Publisher(channel, topology, timeout=timedelta(seconds=2))

        await publisher.publish_trigger(b"{}", routing_key="order.updated", message_id="w-1")
        async with amqp.channel() as check:
            queue = await check.declare_queue(topology.stage_queue("triggers"), passive=True)
            message = await queue.get(fail=False)
            assert message is not None
            assert (message.message_id, message.type) == ("w-1", "order.updated")
            assert message.headers[ATTEMPT_HEADER] == 1
            assert message.delivery_mode == 2
            await message.ack()

        with pytest.raises(PublishFailed, match=r"NO_ROUTE|unroutable"):
            await publisher.publish(
                topology.output_exchange,
                "invoice.created",
                b"{}",
                message_id="e",
                correlation_id="c",
                type="invoice.created",
            )
        with pytest.raises(PublishFailed):
            await publisher.publish(
                f"{topology.prefix}.missing",
                "k",
                b"{}",
                message_id="m",
                correlation_id=None,
                type=None,
            )
        # The broker closed the channel over the missing exchange; the robust channel reopens.
        await publisher.publish_trigger(b"{}", routing_key="order.updated", message_id="w-2")


async def test_an_unreachable_broker_fails_within_the_timeout(settings: Settings) -> None:
    proxy = TcpProxy()
    await proxy.start()
    amqp = settings.amqp.model_copy(update={"url": SecretStr(proxy.url)})
    topology = build(amqp)
    connection = await connect(amqp)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare(channel, topology)
        publisher = Publisher(channel, topology, timeout=timedelta(seconds=1))
        await proxy.cut()
        started = time.monotonic()
        with pytest.raises(PublishFailed):
            await publisher.publish_trigger(b"{}", routing_key="order.updated", message_id="x")
        assert time.monotonic() - started < 3
        await proxy.restore()
        await connection.ready()
        await publisher.publish_trigger(b"{}", routing_key="order.updated", message_id="y")
    finally:
        await connection.close()
        await proxy.cut()
