"""The webhook at the socket level: oversize bodies, slow clients, and a broker that goes away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from pydantic import SecretStr

from consumer.http.server import ServerLimits, build_app, serving
from consumer.http.webhooks import WebhookConfig, WebhookIngress
from consumer.metrics import Metrics
from tests.integration.http_support import (
    AlwaysReady,
    InputExchange,
    TestTriggerPublisher,
    drip_until_closed,
    envelope,
    input_exchange,
    raw_request,
    signed_headers,
    status_of,
)
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

SECRET = "transport-secret"
LIMIT = 256 * 1024
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 3.0  # the oversize tests send 256 KiB first: a loaded machine took over 1 s


@dataclass
class Server:
    port: int
    metrics: Metrics
    exchange: InputExchange
    proxy: TcpProxy

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/afosto"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """The webhook publishing through a TCP proxy in front of the real broker."""
    proxy = TcpProxy()
    await proxy.start()
    async with input_exchange() as exchange:
        publisher = TestTriggerPublisher(proxy.url, exchange.name, timeout=1.0)
        await publisher.start()
        metrics = Metrics()
        config = WebhookConfig(
            secrets=(SecretStr(SECRET),), body_timeout=BODY_TIMEOUT, publish_timeout=2.0
        )
        app = build_app(
            metrics=metrics,
            readiness=AlwaysReady(),
            webhook=WebhookIngress(config, publisher, metrics),
        )
        limits = ServerLimits(header_timeout=HEADER_TIMEOUT)
        try:
            async with serving(app, "127.0.0.1", 0, limits) as port:
                yield Server(port, metrics, exchange, proxy)
        finally:
            await proxy.cut()
            with contextlib.suppress(Exception):
                await publisher.close()


def _head(
    length: int | None, *, chunked: bool = False, content_type: str = "application/json"
) -> bytes:
    lines = [
        "POST /webhooks/afosto HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {content_type}",
        "X-Afosto-Hmac-Sha256: " + "0" * 64,
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_oversize_content_length_is_refused_before_the_body_is_sent(server: Server) -> None:
    # Only the head goes out: the answer must not wait for a body.
    answer = await raw_request(server.port, _head(LIMIT + 1))

    assert status_of(answer) == 413
    assert b"connection: close" in answer.lower()
    assert await server.exchange.drain() == []


async def test_body_at_the_limit_is_read_and_judged_on_its_signature(server: Server) -> None:
    body = b" " * LIMIT  # whitespace: valid size, invalid envelope

    answer = await raw_request(server.port, _head(len(body)) + body)

    assert status_of(answer) == 401


async def test_oversize_chunked_body_is_cut_at_the_limit(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(_head(None, chunked=True))
    chunk = b"x" * 65536
    answer = b""
    try:
        # Four chunks reach the limit exactly; the fifth byte crosses it.
        for piece in [chunk] * 4 + [b"y"] + [chunk] * 60:
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    answer = await reader.read(65536)
            if answer:
                break
    except ConnectionError:
        pass  # the server may close while we keep sending
    finally:
        writer.transport.abort()

    assert status_of(answer) == 413
    assert (
        server.metrics.registry.get_sample_value(
            "invoicer_webhook_requests_total", {"status": "413"}
        )
        == 1
    )


async def test_slow_headers_lose_the_connection(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = _head(2)
    try:
        sent = await drip_until_closed(reader, writer, head, every=0.05)
    finally:
        writer.transport.abort()

    assert sent is not None, "the server kept a connection whose headers never completed"
    assert sent < len(head)


async def test_slow_body_gets_408_and_is_not_enqueued(server: Server) -> None:
    body = envelope()
    head = _head(len(body)).replace(
        b"0" * 64, signed_headers(body, SECRET)["X-Afosto-Hmac-Sha256"].encode()
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head + body[:10])  # then stall
        await writer.drain()
        async with asyncio.timeout(BODY_TIMEOUT * 5):
            answer = await reader.read(65536)
    finally:
        writer.transport.abort()

    assert status_of(answer) == 408
    assert await server.exchange.drain() == []


async def test_broker_unreachable_gives_503_then_recovers(server: Server) -> None:
    body = envelope(message_id="msg_outage")
    headers = signed_headers(body, SECRET)
    # A connection per try, as Afosto's retries come: a kept-alive one idles past the
    # header guard (1 s) whenever the machine is slow, and a post on it races the close.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        await server.proxy.cut()
        async with session.post(server.url, data=body, headers=headers) as response:
            assert response.status == 503
            assert response.headers["Retry-After"].isdigit()

        await server.proxy.restore()
        status = 503
        async with asyncio.timeout(20):
            while status == 503:  # Afosto's retries, compressed
                await asyncio.sleep(0.3)
                async with session.post(server.url, data=body, headers=headers) as response:
                    status = response.status
                    answer = await response.json()

    assert (status, answer["status"]) == (200, "enqueued")  # the 503 did not mark it seen
    [message] = await server.exchange.drain()
    assert message.message_id == "msg_outage"


async def test_expect_continue_with_oversize_head_gets_413_instead_of_continue(
    server: Server,
) -> None:
    head = _head(LIMIT + 1).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")

    answer = await raw_request(server.port, head)

    assert status_of(answer) == 413


async def test_expect_continue_with_good_head_invites_the_body(server: Server) -> None:
    body = envelope(message_id="msg_expect")
    signature = signed_headers(body, SECRET)["X-Afosto-Hmac-Sha256"].encode()
    head = _head(len(body)).replace(b"0" * 64, signature)
    head = head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
            writer.write(body)
            await writer.drain()
            final = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.transport.abort()

    assert status_of(interim) == 100
    assert status_of(final) == 200
    [message] = await server.exchange.drain()
    assert message.message_id == "msg_expect"


async def test_broken_chunked_encoding_is_a_client_error(server: Server) -> None:
    answer = await raw_request(server.port, _head(None, chunked=True) + b"zz\r\nnot hex\r\n")

    assert status_of(answer) == 400
    assert await server.exchange.drain() == []


async def test_refusal_before_the_body_hangs_up_but_after_it_keeps_alive(server: Server) -> None:
    unread = await raw_request(server.port, _head(100, content_type="text/plain"))
    assert status_of(unread) == 415
    assert b"connection: close" in unread.lower()

    body = envelope()  # read in full, then refused on its signature: the connection stays
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(_head(len(body)) + body)
        async with asyncio.timeout(5):
            refused = await reader.readuntil(b"}")
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            healthy = await reader.readuntil(b"}")
    finally:
        writer.transport.abort()
    assert status_of(refused) == 401
    assert status_of(healthy.lstrip()) == 200
