"""A dropped broker connection: aio-pika's robust connection comes back, our consumers are
registered again (asked of the broker, not of our bookkeeping), and work continues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from tests.integration.pipeline_support import (
    assert_exactly_once,
    capture,
    eventually,
    service,
    settled,
)
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup", "no_crash_env")]


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    """A cuttable TCP proxy in front of the test broker; cut for good afterwards."""
    tcp = TcpProxy()
    await tcp.start()
    yield tcp
    await tcp.cut()


@pytest.fixture
def queues(prefix: str) -> list[str]:
    return [f"{prefix}.{stage}" for stage in ("triggers", "intents", "pdf")]


async def _consumers(amqp: AbstractRobustConnection, queues: list[str]) -> dict[str, int]:
    counts = {}
    async with amqp.channel() as channel:
        for name in queues:
            declared = await channel.declare_queue(name, passive=True)
            assert declared.declaration_result is not None
            counts[name] = declared.declaration_result.consumer_count or 0
    return counts


async def test_consumers_come_back_after_the_connection_drops(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
    proxy: TcpProxy,
    queues: list[str],
) -> None:
    env = {**full_env, "INVOICER_AMQP_URL": proxy.url}
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out, service(env) as app:
        order = await afosto.simulator.create_order()
        await afosto.simulator.ship(order.id)
        await eventually(lambda: settled(afosto, out), what="the first invoice")
        assert await _consumers(amqp, queues) == dict.fromkeys(queues, 1)

        assert all(app.consumers.registered().values())
        await proxy.cut()
        await eventually(
            lambda: not any(app.consumers.registered().values()),
            what="the loss seen",
        )
        assert await _consumers(amqp, queues) == dict.fromkeys(queues, 0)
        order = await afosto.simulator.create_order()
        await afosto.simulator.ship(order.id)  # arrives while the service is cut off
        await proxy.restore()

        async def restored() -> bool:
            return await _consumers(amqp, queues) == dict.fromkeys(queues, 1)

        await eventually(restored, what="consumers restored after the reconnect")
        await eventually(lambda: all(app.consumers.registered().values()), what="our view")
        await eventually(lambda: settled(afosto, out), within=30, what="the second invoice")
        checks = {c.name: c.ok for c in await app.controller.readiness()}
        assert all(checks.values()), checks
    assert_exactly_once(afosto, out)
    assert len(afosto.ledger.invoices) == 2


async def test_resubscribe_recreates_a_deleted_queue_with_its_bindings(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    intents = f"{prefix}.intents"
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out, service(full_env) as app:
        async with amqp.channel() as channel:
            await channel.queue_delete(intents)
        await app.consumers.resubscribe(intents)
        assert (await _consumers(amqp, [intents]))[intents] >= 1
        assert app.consumers.registered()[intents]
        order = await afosto.simulator.create_order()
        await afosto.simulator.ship(order.id)  # intents travel <p>.route → <p>.intents by binding
        await eventually(lambda: settled(afosto, out), within=30, what="an invoice after repair")
    assert_exactly_once(afosto, out)


async def test_a_connection_drop_under_load_loses_and_doubles_nothing(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
    proxy: TcpProxy,
) -> None:
    afosto.faults.configure(latency_ms=30.0)
    env = {**full_env, "INVOICER_AMQP_URL": proxy.url, "INVOICER_PUBLISH_TIMEOUT": "2s"}
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out, service(env):
        for _ in range(30):
            order = await afosto.simulator.create_order()
            await afosto.simulator.ship(order.id, fraction=0.5)
            await afosto.simulator.ship(order.id)
        await eventually(lambda: len(out.of("invoice.created")) >= 5, what="some progress")
        await proxy.cut()  # mid-load: handlers are calling Afosto, publishing, acking
        assert not settled(afosto, out)
        await asyncio.sleep(1.0)
        await proxy.restore()
        await eventually(lambda: settled(afosto, out), within=60, what="every order invoiced")
    assert_exactly_once(afosto, out)


async def test_a_pause_during_an_outage_returns_and_survives_the_reconnect(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
    proxy: TcpProxy,
    queues: list[str],
) -> None:
    env = {**full_env, "INVOICER_AMQP_URL": proxy.url, "INVOICER_PUBLISH_TIMEOUT": "1s"}
    async with service(env) as app:
        await proxy.cut()
        started = asyncio.get_running_loop().time()
        await app.consumers.pause()  # must not hang until the broker is back
        assert asyncio.get_running_loop().time() - started < 7
        await proxy.restore()
        for _ in range(100):  # the connection is back once a publish is confirmed again
            try:
                await app.publisher.publish_trigger(b"{}", routing_key="x", message_id="probe")
                break
            except Exception:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert await _consumers(amqp, queues) == dict.fromkeys(queues, 0)  # still paused
        await app.consumers.resume()
        assert await _consumers(amqp, queues) == dict.fromkeys(queues, 1)
        assert all(app.consumers.registered().values())


async def test_stopped_consumers_never_consume_again(
    full_env: dict[str, str],
    amqp: AbstractRobustConnection,
    prefix: str,
    queues: list[str],
) -> None:
    """Once the drain began, a late resume (the circuit's probe passing) changes nothing."""
    async with service(full_env, http=False) as app:
        await app.consumers.stop()
        await app.consumers.resume()
        await app.consumers.resubscribe(queues[0])
        assert await _consumers(amqp, queues) == dict.fromkeys(queues, 0)
        assert not any(app.consumers.registered().values())
        assert app.consumers.expected() == {}
