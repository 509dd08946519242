"""A scripted GraphQL endpoint on a real aiohttp server (free port), for client tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

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
