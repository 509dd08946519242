"""One sandbox instance: its parts, and `running()` which serves it on a free port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from sandbox.cache import ResponseCache
from sandbox.errors import error_body
from sandbox.executor import Executor
from sandbox.faults import FaultConfig, FaultController
from sandbox.invoices import Invoice
from sandbox.ledger import Ledger
from sandbox.pdf import render
from sandbox.publish import AmqpPublisher, WebhookSender
from sandbox.schema import executable_schema
from sandbox.server import build_app, status_for
from sandbox.simulator import Simulator
from sandbox.store import Store


@dataclass(frozen=True)
class SandboxSettings:
    """Start-up settings; faults and modes can also change at runtime (control API)."""

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = field(default="sandbox-key", repr=False)
    seed: int = 0
    lenient: bool = False
    http_status_mode: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig)
    orders: int = 0
    amqp_url: str | None = field(default=None, repr=False)
    exchange: str = "fulfilment"
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_endpoint_id: str = "3f0c9a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
    tenant: str = "sandbox"
    public_url: str | None = None
    # Held responses (a fault) must not keep shutdown waiting for long.
    shutdown_timeout_s: float = 1.0


class Sandbox:
    """Store, ledger, faults, simulator and executor of one running sandbox."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.api_key = settings.api_key
        self.bearer = f"Bearer {settings.api_key}"
        self.http_status_mode = settings.http_status_mode
        self.store = Store(seed=settings.seed, lenient=settings.lenient)
        self.faults = FaultController(settings.faults, seed=settings.seed)
        self.ledger = Ledger(self.store.invoiceable)
        self.store.on_invoice += [self.ledger.record_invoice, self._schedule_pdf]
        self.executor = Executor(executable_schema())
        self.cache = ResponseCache()
        amqp = AmqpPublisher(settings.amqp_url, settings.exchange) if settings.amqp_url else None
        webhooks = None
        if settings.webhook_url:
            if not settings.webhook_secret:
                raise ValueError("a webhook URL needs a webhook secret")
            webhooks = WebhookSender(
                settings.webhook_url,
                settings.webhook_secret,
                settings.webhook_endpoint_id,
                settings.tenant,
            )
        self.simulator = Simulator(self.store, seed=settings.seed, amqp=amqp, webhooks=webhooks)
        self.base_url = ""
        self._pdfs: dict[str, bytes] = {}

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    def error_response(self, code: str, message: str) -> web.Response:
        """A whole-request error: HTTP 200, or its real status in http-status mode."""
        status = status_for(code, self.http_status_mode)
        headers = {"Retry-After": str(self.faults.config.retry_after_s)} if status == 429 else None
        body = error_body(code, message)
        return web.json_response(body, status=status, headers=headers)

    def _schedule_pdf(self, invoice: Invoice) -> None:
        delay = self.faults.pdf_delay()  # None: this invoice's PDF never appears (a fault)
        if delay is not None:
            invoice.pdf_ready_at = time.time() + delay
            self.cache.pdf_scheduled(invoice.pdf_ready_at)

    async def pdf_bytes(self, invoice: Invoice) -> bytes:
        """The rendered PDF, made once per invoice in a worker thread."""
        document = self._pdfs.get(invoice.id)
        if document is None:
            document = await asyncio.to_thread(render, invoice)
            self._pdfs[invoice.id] = document
        return document

    async def _start_publishers(self, stack: AsyncExitStack) -> None:
        sim = self.simulator
        if sim.amqp is not None:
            await sim.amqp.start()
            stack.push_async_callback(sim.amqp.close)
        if sim.webhooks is not None:
            await sim.webhooks.start()
            stack.push_async_callback(sim.webhooks.close)


@asynccontextmanager
async def running(
    settings: SandboxSettings | None = None, **changes: Any
) -> AsyncIterator[Sandbox]:
    """Serve a sandbox (default 127.0.0.1, free port) until the block exits; `changes` override
    fields of `settings` (`faults` may be a FaultConfig or a mapping)."""
    base = settings or SandboxSettings()
    faults = changes.pop("faults", None)
    if isinstance(faults, Mapping):
        faults = FaultConfig().updated(faults)
    if faults is not None:
        changes["faults"] = faults
    sandbox = Sandbox(replace(base, **changes))
    async with AsyncExitStack() as stack:
        runner = web.AppRunner(
            build_app(sandbox),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=sandbox.settings.shutdown_timeout_s,
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, sandbox.settings.host, sandbox.settings.port)
        await site.start()
        port = runner.addresses[0][1]
        host = sandbox.settings.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        sandbox.base_url = sandbox.settings.public_url or f"http://{shown}:{port}"
        await sandbox._start_publishers(stack)
        if sandbox.settings.orders:
            await sandbox.simulator.create_orders(sandbox.settings.orders)
        yield sandbox
