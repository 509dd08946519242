"""The one aiohttp server (DESIGN §5): routes, limits against slow or greedy clients, lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from consumer.http.guard import HeaderDeadline
from consumer.http.health import HealthRoutes, ReadinessSource
from consumer.http.webhooks import WebhookIngress
from consumer.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    # The first request head must be complete this long after the connection opens (our
    # guard); later ones on a kept-alive connection this long after the previous response
    # (aiohttp's keep-alive timer, also the idle timeout). Real senders need milliseconds.
    header_timeout: float = 15.0
    idle_timeout: float | None = None  # keep-alive idle limit; None = header_timeout
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64
    shutdown_timeout: float = 10.0


def build_app(
    *, metrics: Metrics, readiness: ReadinessSource, webhook: WebhookIngress | None
) -> web.Application:
    """The application with health, readiness, metrics and (when configured) the webhook."""
    # client_max_size is a second line only: the webhook stream-reads with its own counter.
    app = web.Application(client_max_size=256 * 1024)
    HealthRoutes(metrics, readiness).add_routes(app)
    if webhook is not None:
        webhook.add_routes(app)
    return app


@asynccontextmanager
async def serving(
    app: web.Application, host: str, port: int, limits: ServerLimits | None = None
) -> AsyncIterator[int]:
    """Serve `app` until the block ends; yields the bound port (useful with port 0)."""
    limits = limits or ServerLimits()
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=limits.idle_timeout or limits.header_timeout,
        max_line_size=limits.max_line_size,
        max_field_size=limits.max_field_size,
        max_headers=limits.max_headers,
        # The signature covers the bytes on the wire; and no decompression bombs.
        auto_decompress=False,
        shutdown_timeout=limits.shutdown_timeout,
    )
    await runner.setup()
    try:
        handler_factory = runner.server
        assert handler_factory is not None
        listener = await asyncio.get_running_loop().create_server(
            lambda: HeaderDeadline(handler_factory(), limits.header_timeout),
            host,
            port,
            reuse_address=True,
        )
        try:
            bound = int(listener.sockets[0].getsockname()[1])
            log.info("http server listening on %s:%s", host, bound)
            yield bound
        finally:
            listener.close()  # stop accepting; runner.cleanup() then closes the connections
    finally:
        await runner.cleanup()
