"""/healthz, /readyz and /metrics on a real server, with readiness asked of the real broker,
and the watchdog re-subscribing after the broker cancelled our consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractIncomingMessage
from pydantic import SecretStr

from consumer.broker_inspect import BrokerInspector, QueueState
from consumer.control import ControlConfig, Controller
from consumer.http.server import build_app, serving
from consumer.metrics import Metrics
from tests.integration.control_support import TestConsumerSet, delete_queues
from tests.integration.http_support import (
    BROKER_URL,
    unique,
)
from tests.integration.pipeline_support import eventually
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


async def _never_called() -> None:
    raise AssertionError("the probe runs only while the circuit is open")


@dataclass
class Service:
    base: str
    session: aiohttp.ClientSession
    metrics: Metrics
    controller: Controller
    consumers: TestConsumerSet
    queue: str
    proxy: TcpProxy
    received: list[bytes]

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def ready_eventually(self, want: bool, within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                status, body = await self.get("/readyz")
                if (status == 200) is want:
                    return dict(body)
                await asyncio.sleep(0.1)


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    queue = unique("tq") + ".triggers"
    received: list[bytes] = []

    async def handle(message: AbstractIncomingMessage) -> None:
        received.append(message.body)
        await message.ack()

    proxy = TcpProxy()
    await proxy.start()
    # A plain connection: aio-pika's robust channel would restore a cancelled consumer by
    # itself, and this test is about the watchdog doing it.
    connection = await aio_pika.connect(BROKER_URL)
    inspector = BrokerInspector(SecretStr(proxy.url), timeout=1.0)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=4)
        consumers = TestConsumerSet(channel, {queue: handle})
        await consumers.start()
        metrics = Metrics()
        config = ControlConfig(watchdog_interval=0.2, misses_before_repair=2, triggers_queue=queue)
        controller = Controller(
            consumers=consumers,
            inspector=inspector,
            probe=_never_called,
            metrics=metrics,
            config=config,
        )
        app = build_app(metrics=metrics, readiness=controller, webhook=None)
        async with (
            controller,
            serving(app, "127.0.0.1", 0) as port,
            aiohttp.ClientSession() as session,
        ):
            base = f"http://127.0.0.1:{port}"
            yield Service(base, session, metrics, controller, consumers, queue, proxy, received)
    finally:
        await inspector.close()
        await proxy.cut()
        await connection.close()
        await delete_queues([queue], BROKER_URL)


async def test_healthz_answers_while_the_process_runs(service: Service) -> None:
    assert await service.get("/healthz") == (200, {"status": "ok"})


async def test_readyz_reports_each_check_as_seen_by_the_broker(service: Service) -> None:
    status, body = await service.get("/readyz")

    assert status == 200
    assert body["status"] == "ready"
    assert body["failed"] == []
    assert body["checks"]["consumers"]["queues"] == {
        service.queue: {"expected": 1, "registered": 1, "exists": True, "ours_live": True}
    }
    assert body["checks"]["afosto"]["circuit"] == "closed"


async def test_readyz_fails_naming_the_broker_when_it_is_unreachable(service: Service) -> None:
    await service.proxy.cut()

    status, body = await service.get("/readyz")

    assert status == 503
    assert set(body["failed"]) == {"broker", "consumers"}
    await service.proxy.restore()
    await service.ready_eventually(True)


async def test_watchdog_resubscribes_after_the_broker_cancels_the_consumer(
    service: Service,
) -> None:
    # Deleting a quorum queue makes the broker send basic.cancel to its consumers.
    await delete_queues([service.queue], BROKER_URL)

    body = await service.ready_eventually(False)
    assert body["failed"] == ["consumers"]
    assert body["checks"]["consumers"]["missing"] == [service.queue]

    await service.ready_eventually(True)
    assert service.consumers.resubscribed == [service.queue]
    ok = service.metrics.registry.get_sample_value(
        "invoicer_consumer_resubscribes_total", {"queue": service.queue, "outcome": "ok"}
    )
    assert ok == 1
    # Consuming for real again, not just registered: a published message arrives.
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(b"after"), routing_key=service.queue
        )
    await eventually(lambda: b"after" in service.received, within=5)


async def test_metrics_are_exposed_and_move(service: Service) -> None:
    await service.ready_eventually(True)  # a broker check records what it saw
    status, text = await service.get("/metrics")
    assert status == 200
    for name in (
        "invoicer_messages_total",
        "invoicer_handler_duration_seconds",
        "invoicer_afosto_calls_total",
        "invoicer_afosto_call_duration_seconds",
        "invoicer_afosto_reads_shared_total",
        "invoicer_pauses_total",
        "invoicer_invoices_created_total",
        "invoicer_invoiced_amount_cents_total",
        "invoicer_time_to_pdf_seconds",
        "invoicer_in_flight",
        "invoicer_consumers_registered",
        "invoicer_oldest_trigger_age_seconds",
        "invoicer_webhook_requests_total",
        "invoicer_webhook_unknown_events_total",
        "invoicer_paused",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert f'invoicer_consumers_registered{{queue="{service.queue}"}} 1.0' in text

    service.metrics.message_done(service.queue, "dead_lettered", reason="too_large")
    _, text = await service.get("/metrics")
    assert f'invoicer_messages_total{{outcome="dead_lettered",queue="{service.queue}"}} 1.0' in text
    assert f'invoicer_dead_letters_total{{queue="{service.queue}",reason="too_large"}} 1.0' in text


class CountingInspector:
    """The real inspector, counting how often the broker is asked."""

    def __init__(self, inner: BrokerInspector) -> None:
        self.inner = inner
        self.asked = 0

    async def queue_states(self, queues: Sequence[str]) -> dict[str, QueueState | None]:
        self.asked += 1
        return await self.inner.queue_states(queues)


async def test_a_readyz_storm_shares_broker_questions(service: Service) -> None:
    counting = CountingInspector(BrokerInspector(SecretStr(BROKER_URL)))
    controller = Controller(
        consumers=service.consumers,
        inspector=counting,
        probe=_never_called,
        metrics=Metrics(),
    )
    try:
        results = await asyncio.gather(*(controller.readiness() for _ in range(50)))
    finally:
        await counting.inner.close()

    assert all(all(check.ok for check in checks) for checks in results)
    assert counting.asked == 1  # the other 49 waited for the same answer


async def test_another_replicas_consumer_does_not_hide_ours_missing(service: Service) -> None:
    other = await aio_pika.connect(BROKER_URL)  # a second replica on the same queue
    async with other:
        channel = await other.channel()
        queue = await channel.declare_queue(service.queue, passive=True)

        async def handle(message: AbstractIncomingMessage) -> None:
            await message.ack()

        await queue.consume(handle)
        await service.ready_eventually(True)

        # Our consumer disappears; the broker still counts the other replica's.
        ours = service.consumers.tag(service.queue)
        await service.consumers.queue(service.queue).cancel(ours)

        body = await service.ready_eventually(False)
        assert body["checks"]["consumers"]["queues"][service.queue]["registered"] == 1
        assert body["checks"]["consumers"]["queues"][service.queue]["ours_live"] is False
        await service.ready_eventually(True)
        assert service.consumers.resubscribed == [service.queue]


async def test_readiness_fails_while_repair_is_impossible_then_heals(service: Service) -> None:
    # Someone re-creates our queue with incompatible arguments: re-declaring it fails.
    await delete_queues([service.queue], BROKER_URL)
    impostor = await aio_pika.connect(BROKER_URL)
    async with impostor:
        channel = await impostor.channel()
        await channel.declare_queue(service.queue, durable=True)  # classic, not quorum

        def failed() -> float:
            value = service.metrics.registry.get_sample_value(
                "invoicer_consumer_resubscribes_total",
                {"queue": service.queue, "outcome": "failed"},
            )
            return value or 0.0

        await eventually(lambda: failed() >= 2, within=10)
        status, body = await service.get("/readyz")
        assert status == 503
        assert body["checks"]["consumers"]["missing"] == [service.queue]

        await channel.queue_delete(service.queue)
    await service.ready_eventually(True)


async def test_not_ready_before_consumers_start_or_after_they_stop(service: Service) -> None:
    await service.consumers.stop()  # what draining does
    try:
        status, body = await service.get("/readyz")
    finally:
        await service.consumers.start()

    assert status == 503
    assert body["failed"] == ["consumers"]
    assert body["checks"]["consumers"]["error"] == "not consuming (starting or stopping)"
    await service.ready_eventually(True)


async def test_readyz_can_exclude_checks_like_kubernetes(service: Service) -> None:
    await service.consumers.stop()
    try:
        full, _ = await service.get("/readyz")
        partial, body = await service.get("/readyz?exclude=consumers&exclude=afosto,consuming")
    finally:
        await service.consumers.start()

    assert (full, partial) == (503, 200)
    assert set(body["checks"]) == {"broker"}
