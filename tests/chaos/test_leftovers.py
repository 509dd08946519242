"""The leftovers sweep removes a dead run's queues, exchanges and user, and never a live run's
(held lock, a connection naming it, a consumer on one of its queues)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from uuid import uuid4

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from tests.chaos.broker import ctl
from tests.chaos.leftovers import hold, inventory, sweep

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl"),
]


def fake_prefix() -> str:
    return f"chaos{uuid4().hex[:6]}"


async def ack(message: AbstractIncomingMessage) -> None:
    await message.ack()


@pytest.fixture
async def runs(broker_url: str) -> AsyncIterator[dict[str, str]]:
    """Four runs' objects (a queue, an exchange, a user each); only `dead` has no sign of life."""
    runs = {kind: fake_prefix() for kind in ("dead", "locked", "named", "consuming")}
    connection = await aio_pika.connect(broker_url)
    named = await aio_pika.connect(
        broker_url, client_properties={"connection_name": f"{runs['named']} harness"}
    )
    try:
        channel = await connection.channel()
        for prefix in runs.values():
            await channel.declare_exchange(f"{prefix}.out", aio_pika.ExchangeType.TOPIC)
            await channel.declare_queue(f"{prefix}.triggers", durable=True)
            await ctl("add_user", f"{prefix}-svc", uuid4().hex)
        queue = await channel.declare_queue(f"{runs['consuming']}.triggers", passive=True)
        await queue.consume(ack)
        with hold(runs["locked"]):
            yield runs
    finally:
        await named.close()
        async with connection.channel() as channel:
            for prefix in runs.values():
                await channel.queue_delete(f"{prefix}.triggers")
                await channel.exchange_delete(f"{prefix}.out")
        for prefix in runs.values():
            with contextlib.suppress(RuntimeError):  # the sweep took it
                await ctl("delete_user", f"{prefix}-svc")
        await connection.close()


async def test_the_sweep_removes_only_the_dead_run(runs: dict[str, str], broker_url: str) -> None:
    connection = await aio_pika.connect(broker_url)
    try:
        removed = await sweep(connection, among=runs.values())
    finally:
        await connection.close()
    assert removed == {"prefixes": 1, "queues": 1, "exchanges": 1, "users": 1}
    inv = await inventory()
    assert runs["dead"] not in set(inv.queues) | set(inv.exchanges) | set(inv.users)
    for kind in ("locked", "named", "consuming"):
        prefix = runs[kind]
        assert inv.queues.get(prefix) == [f"{prefix}.triggers"], kind
        assert inv.exchanges.get(prefix) == [f"{prefix}.out"], kind
        assert inv.users.get(prefix) == f"{prefix}-svc", kind
