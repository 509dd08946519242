"""A recording HTTP proxy between the services and the sandbox: which order each request asked
about and when, so "nothing lost" has evidence independent of the services' own logs.

Faults pass through unchanged: statuses, headers, bodies (also malformed ones), holds, and
connection resets (the client side is aborted too)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

PASSED_HEADERS = ("Content-Type", "Retry-After")


class ApiTap:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.order_queries: dict[str, list[float]] = defaultdict(list)  # order id -> times
        self.requests = 0
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def queried_after(self, order_id: str, at: float) -> bool:
        return any(t >= at for t in self.order_queries.get(order_id, ()))

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        self.requests += 1
        self._note(body)
        headers = {
            k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")
        }
        try:
            async with self._session.post(
                f"{self.upstream}{request.path}", data=body, headers=headers
            ) as up:
                raw = await up.read()
                passed = {k: up.headers[k] for k in PASSED_HEADERS if k in up.headers}
                return web.Response(body=raw, status=up.status, headers=passed)
        except aiohttp.ClientError:
            if request.transport is not None:  # the sandbox reset the connection: so do we
                request.transport.abort()
            return web.Response(status=599)

    def _note(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
            variables = payload.get("variables") or {}
            query = str(payload.get("query", ""))
        except (ValueError, AttributeError):
            return
        order_id = variables.get("id") if isinstance(variables, dict) else None
        if isinstance(order_id, str) and "order(" in query.replace(" (", "("):
            self.order_queries[order_id].append(time.monotonic())


@asynccontextmanager
async def api_tap(upstream: str) -> AsyncIterator[ApiTap]:
    """Serve the tap on 127.0.0.1 (free port) in front of `upstream` (the sandbox base URL)."""
    tap = ApiTap(upstream)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/graphql", tap._forward)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    tap.url = f"http://127.0.0.1:{port}/graphql"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        tap._session = session
        try:
            yield tap
        finally:
            await runner.cleanup()
