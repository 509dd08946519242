"""One demo run: the sandbox, the service and the traffic wired together on a fresh prefix."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractConnection
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live

import sandbox
from consumer import app as service
from consumer.amqp.topology import Topology, build
from consumer.demo.broker import (
    connect_or_explain,
    queue_depths,
    read_dead_letters,
    remove_topology,
)
from consumer.demo.report import DemoReport, LiveView
from consumer.demo.traffic import Traffic, TrafficPlan, TrafficStats
from consumer.demo.watch import Watcher
from consumer.settings import Settings, TestingSettings

API_KEY = "demo-api-key"
WEBHOOK_SECRET = "demo-webhook-secret"
# A little of everything Afosto does wrong, seeded: slow calls, 5xx from the proxy,
# INTERNAL_SERVER_ERROR, dropped connections, and PDFs that take a while to render.
LIGHT_FAULTS: dict[str, Any] = {
    "latency_ms": 15,
    "latency_jitter_ms": 25,
    "internal_error_rate": 0.02,
    "http_503_rate": 0.01,
    "reset_rate": 0.005,
    "pdf_delay_min_s": 0.5,
    "pdf_delay_max_s": 3.0,
}
NO_FAULTS: dict[str, Any] = {"pdf_delay_min_s": 0.2, "pdf_delay_max_s": 1.0}


@dataclass(frozen=True)
class DemoOptions:
    orders: int = 300
    seed: int = 7
    in_flight: int = 20
    faults: str = "light"
    webhooks: bool = True
    output: Path = Path("demo-output")
    timeout: float = 300.0
    amqp_url: str | None = None
    progress: bool = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def service_settings(base: Settings, prefix: str, graphql_url: str, http_port: int) -> Settings:
    """The service's settings for this demo run: own prefix and exchanges, the sandbox as Afosto.

    Everything else (tiers, concurrency, deadlines, ...) comes from `base`, so
    `INVOICER_WAIT_TIERS=1s,2s,5s,30s make demo` shows what a tuning would do."""
    amqp = base.amqp.model_copy(
        update={
            "queue_prefix": prefix,
            "input_exchange": f"{prefix}.fulfilment",
            "output_exchange": f"{prefix}.invoicing",
        }
    )
    afosto = base.afosto.model_copy(update={"url": graphql_url, "api_key": SecretStr(API_KEY)})
    webhook = base.webhook.model_copy(update={"secrets": (SecretStr(WEBHOOK_SECRET),)})
    http = base.http.model_copy(update={"host": "127.0.0.1", "port": http_port})
    log = base.log.model_copy(update={"format": "text"})
    groups = {"amqp": amqp, "afosto": afosto, "webhook": webhook, "http": http, "log": log}
    return base.model_copy(update={**groups, "testing": TestingSettings()})


async def _cancel(task: asyncio.Task[TrafficStats]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task  # its failure, if any, was reported through the result already


def honour_lost_cancel() -> None:
    """Raise CancelledError if this task was asked to stop and the request got lost.

    On Python 3.11, `asyncio.wait_for` (aio-pika and aiormq await their RPCs through it) returns
    the inner result when a cancel lands just as that result arrives, dropping the
    cancellation; the request stays counted on the task, so checking it makes Ctrl-C stick.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _pipeline_queues(topology: Topology) -> list[str]:
    return [q.name for q in topology.queues if q.name != topology.dead_queue]


class Run:
    """One demo run: owns the names, the taps and the report."""

    def __init__(self, options: DemoOptions, base: Settings, console: Console) -> None:
        self.options = options
        self.console = console
        self.prefix = f"demo{uuid.uuid4().hex[:8]}"
        self.url = base.amqp.url.get_secret_value()
        self.base = base
        self.pdf_dir = options.output / "pdfs"
        self.topology = build(
            service_settings(base, self.prefix, "http://127.0.0.1/graphql", 0).amqp
        )
        self.tap_queues: list[str] = []

    async def execute(self) -> DemoReport:
        """Run the demo; the broker is left clean whatever happens."""
        probe = await connect_or_explain(self.url)  # fail fast, before anything is declared
        await probe.close()
        try:
            return await self._run()
        finally:
            try:
                failed = await remove_topology(self.url, self.topology, self.tap_queues)
            except Exception as exc:  # the broker went away mid-demo: say what may be left
                failed = [f"everything under {self.prefix}.* ({type(exc).__name__})"]
            if failed:
                self.console.print(f"[red]could not delete: {', '.join(failed)}[/]")

    async def _run(self) -> DemoReport:
        started = time.monotonic()
        self._fresh_pdf_dir()
        port = _free_port()
        async with AsyncExitStack() as stack:
            connection = await connect_or_explain(self.url)
            stack.push_async_callback(connection.close)
            watcher = Watcher(
                await connection.channel(),
                output_exchange=self.topology.output_exchange,
                pdf_dir=self.pdf_dir,
                api_key=API_KEY,
            )
            stack.push_async_callback(watcher.close)
            await watcher.start()
            self.tap_queues = watcher.queue_names
            sb = await stack.enter_async_context(self._sandbox(port))
            settings = service_settings(self.base, self.prefix, sb.graphql_url, port)
            await stack.enter_async_context(service.running(settings))
            plan = TrafficPlan(self.options.orders, in_flight=self.options.in_flight)
            traffic = Traffic(sb.simulator, sb.ledger, plan)
            traffic_task = asyncio.create_task(traffic.run())
            # Unwinds before the sandbox and the service close, also on Ctrl-C.
            stack.push_async_callback(_cancel, traffic_task)
            honour_lost_cancel()
            finished = await self._follow(connection, sb, watcher, traffic, traffic_task)
            await watcher.wait_downloads()
            dead_letters = await read_dead_letters(connection, self.topology.dead_queue)
            leftover = (await queue_depths(connection, _pipeline_queues(self.topology))).total
            honour_lost_cancel()
            report = self._report(sb, watcher, traffic, dead_letters, leftover)
            report.finished = finished
        report.seconds = time.monotonic() - started
        return report

    async def _follow(
        self,
        connection: AbstractConnection,
        sb: sandbox.Sandbox,
        watcher: Watcher,
        traffic: Traffic,
        traffic_task: asyncio.Task[TrafficStats],
    ) -> bool:
        """Show progress until the pipeline has caught up with the traffic (True) or time is up."""
        view = LiveView(self.console, self.options.orders)
        deadline = time.monotonic() + self.options.timeout
        quiet_checks = 0
        with self._live(view) as live:
            while time.monotonic() < deadline:
                honour_lost_cancel()
                await asyncio.sleep(0.5)
                depths = await queue_depths(connection, _pipeline_queues(self.topology))
                dead = (await queue_depths(connection, [self.topology.dead_queue])).total
                view.update(traffic.stats, watcher.observed, len(sb.ledger.invoices), dead)
                if live is not None:
                    live.update(view.renderable())
                if traffic_task.done():
                    traffic_task.result()  # a simulator failure ends the demo loudly
                    caught_up = self._caught_up(sb, watcher, depths.total)
                    quiet_checks = quiet_checks + 1 if caught_up else 0
                    if quiet_checks >= 2:
                        return True
        return False

    @contextlib.contextmanager
    def _live(self, view: LiveView) -> Iterator[Live | None]:
        if not self.options.progress:
            yield None
            return
        with Live(view.renderable(), console=self.console, refresh_per_second=8) as live:
            yield live

    @asynccontextmanager
    async def _sandbox(self, service_port: int) -> AsyncIterator[sandbox.Sandbox]:
        faults = LIGHT_FAULTS if self.options.faults == "light" else NO_FAULTS
        webhook_url = f"http://127.0.0.1:{service_port}/webhooks/afosto"
        async with sandbox.running(
            seed=self.options.seed,
            api_key=API_KEY,
            faults=faults,
            amqp_url=self.url,
            exchange=self.topology.input_exchange,
            webhook_url=webhook_url if self.options.webhooks else None,
            webhook_secret=WEBHOOK_SECRET if self.options.webhooks else None,
        ) as sb:
            yield sb

    def _caught_up(self, sb: sandbox.Sandbox, watcher: Watcher, in_queues: int) -> bool:
        """Nothing left to invoice, every invoice announced with its PDF, queues empty."""
        seen = watcher.observed
        ledger_ids = {i.id for i in sb.ledger.invoices}
        return (
            in_queues == 0
            and not any(sb.ledger.never_invoiced().values())
            and ledger_ids <= set(seen.created)
            and set(seen.created) <= set(seen.pdf_ready)
        )

    def _fresh_pdf_dir(self) -> None:
        self.pdf_dir.mkdir(parents=True, exist_ok=True)
        for old in self.pdf_dir.glob("*.pdf"):
            old.unlink()

    def _report(
        self,
        sb: sandbox.Sandbox,
        watcher: Watcher,
        traffic: Traffic,
        dead_letters: Counter[str],
        leftover: int,
    ) -> DemoReport:
        seen = watcher.observed
        to_created, to_pdf = seen.latencies(traffic.ready_at)
        ledger = sb.ledger
        credit_ids = {i.id for i in ledger.invoices if any(ln.is_contra for ln in i.lines)}
        calls = {op: sum(outcomes.values()) for op, outcomes in ledger.call_counts().items()}
        return DemoReport(
            prefix=self.prefix,
            orders=traffic.stats.orders_done,
            traffic=traffic.stats,
            invoices=len(seen.created) - seen.credits(),
            credits=seen.credits(),
            ledger_invoices=len(ledger.invoices) - len(credit_ids),
            ledger_credits=len(credit_ids),
            created_matches_ledger=set(seen.created) == {i.id for i in ledger.invoices},
            double_invoiced_items=len(ledger.invoiced_more_than_once()),
            never_invoiced_items=sum(len(v) for v in ledger.never_invoiced().values()),
            pdfs_ready=len(seen.pdf_ready),
            pdfs_written=seen.pdfs_written,
            pdf_dir=self.pdf_dir,
            afosto_calls=calls,
            to_created_s=to_created,
            to_pdf_s=to_pdf,
            repeated_output=seen.repeated_output,
            dead_letters=dead_letters,
            leftover_messages=leftover,
        )
