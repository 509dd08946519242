"""The server's own header-read deadline (consumer/http/guard.py), on fresh and kept-alive
connections, independent of aiohttp's keep-alive timer."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

import pytest

from consumer.http.server import ServerLimits, build_app, serving
from consumer.loop import run
from consumer.metrics import Metrics
from tests.integration.http_support import (
    AlwaysReady,
    drip_until_closed,
    raw_request,
    status_of,
)

pytestmark = pytest.mark.integration


def _health_only(limits: ServerLimits) -> AbstractAsyncContextManager[int]:
    """The server without a webhook, on a free port."""
    app = build_app(metrics=Metrics(), readiness=AlwaysReady(), webhook=None)
    return serving(app, "127.0.0.1", 0, limits)


async def test_header_deadline_holds_without_aiohttps_keepalive_timer() -> None:
    """Our guard alone: aiohttp's keep-alive timer is set far beyond the test."""
    async with _health_only(ServerLimits(header_timeout=0.5, idle_timeout=300)) as port:
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            sent = await drip_until_closed(reader, writer, head, every=0.05)
        finally:
            writer.transport.abort()
        fast = await raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")

    assert sent is not None, "the server kept a connection whose head never completed"
    assert sent < len(head)
    assert status_of(fast) == 200  # a prompt client on the same server is served


async def test_slow_second_request_on_a_kept_alive_connection_is_closed() -> None:
    async with _health_only(ServerLimits(header_timeout=0.5, idle_timeout=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(5):
                first = await reader.readuntil(b"}")
            slow = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
            closed = await drip_until_closed(reader, writer, slow, every=0.05) is not None
        finally:
            writer.transport.abort()

    assert status_of(first) == 200
    assert closed


async def test_a_head_completed_in_time_disarms_the_deadline_even_if_split() -> None:
    async with _health_only(ServerLimits(header_timeout=0.5, idle_timeout=300)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            # "\r\n\r\n" over 4 reads; few writes, so a slow machine stays inside the deadline.
            for piece in (b"GET /healthz HTTP/1.1\r\nHost: x\r", b"\n", b"\r", b"\n"):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.005)
            async with asyncio.timeout(5):
                first = await reader.readuntil(b"}")
            await asyncio.sleep(1.0)  # past the head deadline: the connection must survive
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(5):
                second = await reader.readuntil(b"}")
        finally:
            writer.transport.abort()

    assert status_of(first) == 200
    assert status_of(second.lstrip()) == 200


def test_guard_serves_and_closes_on_uvloop() -> None:
    """The service runs on uvloop by default, whose transports are no asyncio.Transport."""

    async def scenario() -> tuple[bytes, int | None]:
        async with _health_only(ServerLimits(header_timeout=0.5, idle_timeout=300)) as port:
            fast = await raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
                sent = await drip_until_closed(reader, writer, head, every=0.05)
            finally:
                writer.transport.abort()
            return fast, sent

    fast, sent = run(scenario(), "uvloop")
    assert status_of(fast) == 200
    assert sent is not None, "the guard did not close a connection whose head never completed"
