"""The Afosto circuit: a burst of UNAUTHORIZED pauses consumption (messages wait in the queue,
readiness fails), a probe with backoff notices recovery, and consumption resumes by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from pydantic import SecretStr

from consumer.broker_inspect import BrokerInspector
from consumer.control import ControlConfig, Controller
from consumer.http.server import build_app, serving
from consumer.metrics import Metrics
from tests.integration.control_support import TestConsumerSet, delete_queues
from tests.integration.http_support import BROKER_URL, unique
from tests.integration.pipeline_support import eventually

pytestmark = pytest.mark.integration

MESSAGES = 30


@dataclass
class FakeAfosto:
    """A tiny real HTTP server that answers 401 while `authorized` is false."""

    authorized: bool = False
    calls: int = 0
    refused: int = 0
    probes: int = 0
    handled: set[str] = field(default_factory=set)

    async def graphql(self, request: web.Request) -> web.Response:
        self.calls += 1
        payload = await request.json()
        if payload.get("probe"):
            self.probes += 1
        if not self.authorized:
            self.refused += 1
            return web.json_response(
                {"errors": [{"message": "no", "extensions": {"code": "UNAUTHORIZED"}}]},
                status=401,
            )
        if order := payload.get("order"):
            self.handled.add(order)
        return web.json_response({"data": {"ok": True}})


class Unauthorized(Exception):
    pass


async def _call(session: aiohttp.ClientSession, url: str, payload: dict[str, object]) -> None:
    async with session.post(url, json=payload) as response:
        if response.status in (401, 403):
            raise Unauthorized(str(response.status))
        response.raise_for_status()


@pytest.fixture
async def afosto() -> AsyncIterator[tuple[FakeAfosto, str]]:
    fake = FakeAfosto()
    app = web.Application()
    app.router.add_post("/graphql", fake.graphql)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}/graphql"
    finally:
        await runner.cleanup()


async def test_unauthorized_burst_pauses_then_resumes_without_losing_messages(
    afosto: tuple[FakeAfosto, str],
) -> None:
    fake, api_url = afosto
    queue = unique("tq") + ".triggers"
    metrics = Metrics()
    connection = await aio_pika.connect_robust(BROKER_URL)
    inspector = BrokerInspector(SecretStr(BROKER_URL))
    controller: Controller | None = None
    async with aiohttp.ClientSession() as session:

        async def handle(message: AbstractIncomingMessage) -> None:
            # The shape of the runtime's rule: a systemic failure returns the delivery untouched.
            try:
                await _call(session, api_url, {"order": message.body.decode()})
            except Unauthorized:
                assert controller is not None
                controller.systemic("unauthorized", "afosto answered 401")
                await message.nack(requeue=True)
                return
            await message.ack()

        async def probe() -> None:
            await _call(session, api_url, {"probe": True})

        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=1)
            consumers = TestConsumerSet(channel, {queue: handle})
            await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
            for n in range(MESSAGES):
                await channel.default_exchange.publish(
                    aio_pika.Message(f"ord_{n}".encode()), routing_key=queue
                )
            config = ControlConfig(watchdog_interval=0.2, probe_initial=0.05, probe_max=0.2)
            controller = Controller(
                consumers=consumers,
                inspector=inspector,
                probe=probe,
                metrics=metrics,
                config=config,
            )
            app = build_app(metrics=metrics, readiness=controller, webhook=None)
            async with controller, serving(app, "127.0.0.1", 0) as port:
                await consumers.start()
                await eventually(lambda: controller is not None and controller.paused, within=10)

                # Paused: the API sees only probes, the messages wait, readiness says why.
                await asyncio.sleep(0.5)
                refused_handling = fake.refused - fake.probes
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    assert response.status == 503
                    body = await response.json()
                assert set(body["failed"]) == {"afosto", "consuming"}
                assert body["checks"]["afosto"]["reason"] == "unauthorized"
                state = (await inspector.queue_states([queue]))[queue]
                assert state is not None
                assert (state.consumers, state.messages) == (0, MESSAGES)
                assert fake.probes >= 2  # probing with backoff, not once
                await eventually(
                    lambda: (
                        metrics.registry.get_sample_value(
                            "invoicer_queue_messages", {"queue": queue}
                        )
                        == MESSAGES
                    ),
                    within=5,
                )  # queue depth stays visible while paused
                await asyncio.sleep(0.5)
                assert fake.refused - fake.probes == refused_handling  # nothing burnt meanwhile

                fake.authorized = True
                await eventually(lambda: len(fake.handled) == MESSAGES, within=20)
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    assert response.status == 200

            assert fake.handled == {f"ord_{n}" for n in range(MESSAGES)}
            assert refused_handling <= 2  # prefetch 1: at most the in-flight delivery or two
            sample = metrics.registry.get_sample_value
            assert sample("invoicer_pauses_total", {"reason": "unauthorized"}) == 1
            assert sample("invoicer_paused") == 0
            assert sample("invoicer_afosto_circuit_open") == 0
            assert (sample("invoicer_afosto_probes_total", {"outcome": "failed"}) or 0) >= 2
            assert sample("invoicer_afosto_probes_total", {"outcome": "ok"}) == 1
        finally:
            await inspector.close()
            await connection.close()
            await delete_queues([queue], BROKER_URL)


async def test_sustained_api_failures_open_the_circuit_but_a_blip_does_not() -> None:
    metrics = Metrics()

    class Idle:
        def expected(self) -> dict[str, int]:
            return {}

        def registered(self) -> dict[str, bool]:
            return {}

        async def resubscribe(self, queue: str) -> None: ...
        async def pause(self) -> None: ...
        async def resume(self) -> None: ...

    probe_ok = asyncio.Event()

    async def probe() -> None:
        if not probe_ok.is_set():
            raise ConnectionError("still down")

    config = ControlConfig(api_down_after=0.3, api_down_min_failures=3, probe_initial=0.05)
    controller = Controller(
        consumers=Idle(),
        inspector=BrokerInspector(SecretStr(BROKER_URL)),
        probe=probe,
        metrics=metrics,
        config=config,
    )
    async with controller:
        for _ in range(5):  # many failures, but not for long
            controller.api_result(ok=False)
        controller.api_result(ok=True)
        assert not controller.circuit_open
        for _ in range(3):
            controller.api_result(ok=False)
            await asyncio.sleep(0.2)
        assert controller.circuit_open
        probe_ok.set()
        await eventually(lambda: not controller.circuit_open, within=5)
    assert metrics.registry.get_sample_value("invoicer_pauses_total", {"reason": "api_down"}) == 1


async def test_pausing_is_retried_until_it_happens() -> None:
    class Flaky:
        def __init__(self) -> None:
            self.pause_calls = 0
            self.resumed = asyncio.Event()

        def expected(self) -> dict[str, int]:
            return {}

        def registered(self) -> dict[str, bool]:
            return {}

        async def resubscribe(self, queue: str) -> None: ...

        async def pause(self) -> None:
            self.pause_calls += 1
            if self.pause_calls < 3:
                raise ConnectionError("broker away")

        async def resume(self) -> None:
            self.resumed.set()

    consumers = Flaky()
    probe_ok = asyncio.Event()

    async def probe() -> None:
        if not probe_ok.is_set():
            raise ConnectionError("still refused")

    controller = Controller(
        consumers=consumers,
        inspector=BrokerInspector(SecretStr(BROKER_URL)),
        probe=probe,
        metrics=Metrics(),
        config=ControlConfig(probe_initial=0.02, probe_max=0.05),
    )
    async with controller:
        controller.systemic("forbidden", "403")
        await eventually(lambda: controller.paused, within=5)
        assert consumers.pause_calls == 3
        probe_ok.set()
        async with asyncio.timeout(5):
            await consumers.resumed.wait()
        await eventually(lambda: not controller.circuit_open, within=5)
