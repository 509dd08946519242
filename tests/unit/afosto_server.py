"""A scripted GraphQL endpoint on a real aiohttp server (free port), for client tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from consumer.afosto import AfostoClient

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(
            text=text, status=status, headers=headers, content_type="application/json"
        )

    return reply


def gql_error(code: str, **extensions: Any) -> Reply:
    return answer(
        {
            "data": None,
            "errors": [{"message": code.lower(), "extensions": {"code": code, **extensions}}],
        }
    )


def slow(seconds: float, then: Reply) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await then(request)

    return reply


async def hang_up(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.05)
    return web.Response(status=200)


@dataclass
class Script:
    """Replies in order; the last one repeats. Records every request body and header."""

    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return await reply(request)


@asynccontextmanager
async def serving(*replies: Reply) -> AsyncIterator[Script]:
    script = Script(list(replies))
    app = web.Application()
    app.router.add_post("/graphql", script.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    script.url = f"http://127.0.0.1:{port}/graphql"
    try:
        yield script
    finally:
        await runner.cleanup()


KEY = "sk_test_very_secret_key"

INVOICE: dict[str, Any] = {
    "id": "inv-1",
    "number": "INV-00001",
    "currency": "EUR",
    "created_at": 1767603600000,
    "customer": {"reference": None, "contact": {"id": "c1", "email": "c1@example.test"}},
    "orders": [{"id": "o1", "number": "1042"}],
    "lines": [
        {
            "ids": ["a"],
            "order_id": "o1",
            "sku": "S",
            "label": "L",
            "quantity": 1,
            "unit_price": 1210,
            "total": 1210.0,
            "total_ex_vat": "1000",
            "vat": {"rate": 21, "amount": 210},
            "is_contra": False,
            "brand": "extra fields are fine",
        }
    ],
    "subtotal": 1210,
    "total": 1210,
    "total_ex_vat": 1000,
    "vat": [{"rate": 21, "amount": 210}],
    "reimbursement": {"status": "OPEN", "amount_paid": 0, "amount_due": 1210},
    "pdf_url": None,
}
ORDER: dict[str, Any] = {
    "id": "o1",
    "number": 1042,
    "customer": INVOICE["customer"],
    "actions": [{"action": "INVOICE", "ids": ["b", "a"]}, {"action": "SOMETHING_NEW", "ids": []}],
    "invoices": [],
}


class Sleeps:
    """Injected instead of asyncio.sleep: records, never waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@asynccontextmanager
async def client_for(*replies: Reply, **kw: Any) -> AsyncIterator[tuple[AfostoClient, Any, Sleeps]]:
    sleeps = Sleeps()
    async with serving(*replies) as script:
        options: dict[str, Any] = {"sleep": sleeps, "timeout": 2.0} | kw
        async with AfostoClient(script.url, SecretStr(KEY), **options) as client:
            yield client, script, sleeps
