"""The one composition root: builds the service inside an AsyncExitStack, tears it down in order.

Start-up: connect → declare the topology → Afosto client → controller → consume → HTTP server.
Shutdown (the stack unwinds in reverse): HTTP server closes → controller stops → consumers are
cancelled and in-flight deliveries finish within DRAIN_DEADLINE → Afosto client, channels and
the connection close. Deliveries still unfinished then return to their queues by themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consumer.afosto import AfostoClient
from consumer.amqp.connection import connect
from consumer.amqp.consume import LoopConfig, Processor
from consumer.amqp.consumers import Consumers
from consumer.amqp.declare import declare
from consumer.amqp.publisher import Publisher
from consumer.amqp.topology import Topology, build
from consumer.broker_inspect import BrokerInspector
from consumer.control import ControlConfig, Controller, PauseReason
from consumer.crash import crash_hook
from consumer.http.server import build_app, serving
from consumer.http.webhooks import WebhookConfig, WebhookIngress
from consumer.loop import loop_name
from consumer.metrics import Metrics
from consumer.settings import Settings, SettingsError
from handlers.errors import Systemic
from handlers.pdf_timing import PdfDelayEstimator
from handlers.ports import Deps, Route, Stage
from handlers.routing import ROUTES

log = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class App:
    """Handles to a running service (for tests, the demo and the CLI)."""

    settings: Settings
    topology: Topology
    metrics: Metrics
    publisher: Publisher
    consumers: Consumers
    processor: Processor
    controller: Controller
    http_port: int | None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        """Ask the service to drain and stop (what SIGTERM does)."""
        self._stop.set()

    async def wait(self) -> None:
        """Return once `stop()` was called."""
        await self._stop.wait()


def systemic_reason(exc: Systemic) -> PauseReason:
    return "forbidden" if "FORBIDDEN" in exc.detail or "403" in exc.detail else "unauthorized"


@asynccontextmanager
async def running(
    settings: Settings, *, routes: Mapping[Stage, Route] = ROUTES, http: bool = True
) -> AsyncIterator[App]:
    """The whole service, consuming until the block ends; then it drains and closes."""
    if not settings.afosto.api_key.get_secret_value():
        raise SettingsError("INVOICER_AFOSTO_API_KEY: required to run the service")
    amqp, pipeline = settings.amqp, settings.pipeline
    metrics = Metrics()
    topology = build(amqp)
    crash = crash_hook(settings.testing.crash_at)
    async with AsyncExitStack() as stack:
        connection = await connect(amqp)
        stack.push_async_callback(connection.close)
        inspector = BrokerInspector(amqp.url)
        stack.push_async_callback(inspector.close)
        publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        stack.push_async_callback(publish_channel.close)
        consume_channel = await connection.channel()
        stack.push_async_callback(consume_channel.close)
        queues = await declare(consume_channel, topology)
        controller: Controller | None = None

        def on_api_result(ok: bool) -> None:
            if controller is not None:  # late-bound: the controller needs the client's probe
                controller.api_result(ok)

        def on_systemic(exc: Systemic) -> None:
            if controller is not None:
                controller.systemic(systemic_reason(exc), exc.detail)

        def on_unroutable(detail: str) -> None:
            if controller is not None:
                controller.systemic("output_unroutable", detail)

        api = await stack.enter_async_context(
            AfostoClient(
                settings.afosto.url,
                settings.afosto.api_key,
                timeout=settings.afosto.timeout,
                max_tries=settings.afosto.max_tries,
                retry_budget=settings.afosto.retry_budget,
                concurrency=pipeline.concurrency,
                metrics=metrics,
                crash=crash,
                on_result=on_api_result,
            )
        )
        publisher = Publisher(
            publish_channel, topology, timeout=amqp.publish_timeout, metrics=metrics
        )
        deps = Deps(
            api=api,
            clock=SystemClock(),
            pdf_deadline=pipeline.pdf_deadline,
            recheck_deadline=pipeline.recheck_deadline,
            crash=crash,
            # A first PDF check rounds up to a wait tier anyway: choose among the tiers.
            pdf_timing=PdfDelayEstimator(amqp.wait_tiers),
        )
        processor = Processor(
            topology=topology,
            deps=deps,
            publisher=publisher,
            config=LoopConfig(
                concurrency=pipeline.concurrency,
                max_attempts=pipeline.max_attempts,
                retry_delay=pipeline.retry_delay,
                max_message_bytes=pipeline.max_message_bytes,
            ),
            metrics=metrics,
            on_systemic=on_systemic,
            on_unroutable=on_unroutable,
            crash=crash,
        )
        consumers = Consumers(
            consume_channel, topology, routes, processor, prefetch=pipeline.stage_prefetch
        )

        async def drain() -> None:
            nonlocal controller
            controller = None  # exited already: a Systemic answer now must not re-arm its circuit
            await consumers.stop()
            deadline = pipeline.drain_deadline.total_seconds()
            try:
                async with asyncio.timeout(deadline):
                    await processor.wait_idle()
                log.info("drained: every delivery in flight finished")
            except TimeoutError:
                log.warning(
                    "drain deadline passed with %d deliveries in flight; the broker requeues them",
                    processor.in_flight,
                )
                await processor.cancel_in_flight()

        stack.push_async_callback(drain)
        controller = await stack.enter_async_context(
            Controller(
                consumers=consumers,
                inspector=inspector,
                probe=api.ping,
                metrics=metrics,
                config=ControlConfig(triggers_queue=topology.stage_queue("triggers")),
            )
        )
        # Consume before serving HTTP, so /readyz never says ready while nothing consumes.
        await consumers.start(queues)
        port: int | None = None
        if http:
            webhook = None
            if settings.webhook.secrets:
                webhook = WebhookIngress(
                    WebhookConfig(
                        secrets=settings.webhook.secrets,
                        max_body_bytes=pipeline.max_message_bytes,
                    ),
                    publisher,
                    metrics,
                )
            web_app = build_app(metrics=metrics, readiness=controller, webhook=webhook)
            port = await stack.enter_async_context(
                serving(web_app, settings.http.host, settings.http.port)
            )
        log.info(
            "invoicer running",
            extra={
                "prefix": topology.prefix,
                "http_port": port,
                "concurrency": pipeline.concurrency,
                "prefetch": pipeline.stage_prefetch,
                "event_loop": loop_name(),
            },
        )
        yield App(settings, topology, metrics, publisher, consumers, processor, controller, port)
        log.info("invoicer stopping: draining")


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the service until `stop` is set, then drain and close."""
    async with running(settings) as app:
        stop_task = asyncio.ensure_future(stop.wait())
        app_task = asyncio.ensure_future(app.wait())
        try:
            await asyncio.wait({stop_task, app_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
            app_task.cancel()
