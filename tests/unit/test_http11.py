"""consumer/afosto/http11.py against real servers on a free port: an asyncio server that writes
exact bytes (to reach the wire format's corners) and an aiohttp server with TLS (trustme)."""

from __future__ import annotations

import asyncio
import inspect
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
import uvloop
from aiohttp import web

from consumer.afosto import http11
from consumer.afosto.http11 import Http11Client, RequestFailed

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


@dataclass
class Wire:
    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)  # each request's head and body


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


@asynccontextmanager
async def wire(*replies: Reply) -> AsyncIterator[Wire]:
    """Answers every request on the n-th connection with replies[n] (the last one repeats);
    a reply that returns without closing keeps the connection for the next request."""
    state = Wire("")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reply = replies[min(state.connections, len(replies) - 1)]
        state.connections += 1
        try:
            while True:
                request = await _read_request(reader)
                state.requests.append(request)
                await reply(reader, writer, request)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the test is over
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/graphql?x=1"
    async with server:
        yield state


def send(*chunks: bytes, pause: float = 0.0, close: bool = False) -> Reply:
    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _req: bytes) -> None:
        for chunk in chunks:
            if pause:
                await asyncio.sleep(pause)
            writer.write(chunk)
            await writer.drain()
        if close:
            writer.close()

    return reply


def client(url: str, **options: float) -> Http11Client:
    headers = {"Authorization": "Bearer key-0123456789", "Content-Type": "application/json"}
    return Http11Client(url, headers, **options)  # type: ignore[arg-type]


async def test_requests_share_one_kept_alive_connection_and_carry_the_head() -> None:
    async with wire(send(OK)) as server, client(server.url) as http:
        answers = [await http.post(b'{"n":%d}' % i) for i in range(20)]
    assert {(a.status, a.body) for a in answers} == {(200, b'{"ok":true}')}
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /graphql?x=1 HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in first
    assert b"\r\nAuthorization: Bearer key-0123456789\r\n" in first
    assert first.endswith(b'Content-Length: 7\r\n\r\n{"n":0}')


async def test_a_chunked_answer_split_across_reads_is_joined() -> None:
    chunked = send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n",
        b"5\r\nhello\r\n",
        b"6\r\n world\r\n0\r\n\r\n",
        pause=0.02,
    )
    async with wire(chunked) as server, client(server.url) as http:
        first = await http.post(b"{}")
        second = await http.post(b"{}")
    assert (first.status, first.body, first.retry_after) == (200, b"hello world", "7")
    assert second.body == b"hello world"
    assert server.connections == 1


async def test_an_answer_without_length_ends_with_the_connection_and_is_not_reused() -> None:
    no_length = send(b"HTTP/1.1 503 Busy\r\n\r\nno length", close=True)
    async with wire(no_length) as server, client(server.url) as http:
        first = await http.post(b"{}")
        second = await http.post(b"{}")
    assert (first.status, first.body) == (503, b"no length")
    assert second.body == b"no length"
    assert server.connections == 2


async def test_connection_close_from_the_server_opens_a_new_connection_next_time() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    async with wire(send(closing)) as server, client(server.url) as http:
        await http.post(b"{}")
        await http.post(b"{}")
    assert server.connections == 2


async def test_interim_answers_are_skipped() -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    async with wire(send(hints, OK)) as server, client(server.url) as http:
        answer = await http.post(b"{}")
    assert (answer.status, answer.body) == (200, b'{"ok":true}')


async def test_an_idle_connection_the_server_closed_is_replaced_quietly() -> None:
    async with wire(send(OK, close=True)) as server, client(server.url) as http:
        await http.post(b"{}")
        await asyncio.sleep(0.1)  # the server's close reaches the idle connection
        answer = await http.post(b"{}")
    assert answer.status == 200
    assert server.connections == 2


async def test_a_connection_idle_past_the_keep_alive_limit_is_not_reused() -> None:
    async with wire(send(OK)) as server, client(server.url) as http:
        await http.post(b"{}")
        for idle in http._idle:
            idle.idle_since -= http11.IDLE_TIMEOUT + 1
        await http.post(b"{}")
    assert server.connections == 2


async def test_a_connection_lost_mid_answer_fails_as_possibly_sent() -> None:
    cut = send(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial', close=True)
    async with wire(cut) as server, client(server.url) as http:
        with pytest.raises(RequestFailed) as failed:
            await http.post(b"{}")
    assert failed.value.sent
    assert not failed.value.timed_out
    assert "connection" in str(failed.value)


async def test_a_slow_answer_times_out_and_its_connection_is_dropped() -> None:
    answered = 0

    async def quick_then_stuck(r: asyncio.StreamReader, w: asyncio.StreamWriter, q: bytes) -> None:
        nonlocal answered
        answered += 1
        if answered > 1:
            await r.read()  # no answer until the client gives up and leaves
        await send(OK)(r, w, q)

    # The first answer opens the connection, so the deadline below times the answer alone:
    # a connect on a starved machine can take longer than any short deadline.
    async with wire(quick_then_stuck, send(OK)) as server, client(server.url, timeout=1.5) as http:
        assert (await http.post(b"{}")).status == 200
        with pytest.raises(RequestFailed) as failed:
            await http.post(b"{}")
        assert failed.value.sent
        assert failed.value.timed_out
        assert "timed out after 1.5s" in str(failed.value)
        answer = await http.post(b"{}")  # a fresh connection, not the late answer
    assert answer.status == 200
    assert server.connections == 2


async def test_a_refused_connection_never_left() -> None:
    async with wire(send(OK)) as server:
        url = server.url
    async with client(url) as http:
        with pytest.raises(RequestFailed) as failed:
            await http.post(b"{}")
    assert not failed.value.sent
    assert "cannot connect" in str(failed.value)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}",
        b"SMTP ready\r\n\r\n",
    ],
)
async def test_a_malformed_answer_fails_and_drops_the_connection(answer: bytes) -> None:
    async with wire(send(answer), send(OK)) as server, client(server.url) as http:
        with pytest.raises(RequestFailed, match="malformed HTTP answer"):
            await http.post(b"{}")
        assert (await http.post(b"{}")).status == 200
    assert server.connections == 2


async def test_an_oversized_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http11, "MAX_ANSWER", 1000)
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    async with wire(send(big)) as server, client(server.url) as http:
        with pytest.raises(RequestFailed, match="larger than 1000 bytes"):
            await http.post(b"{}")


async def test_a_second_unrequested_answer_makes_the_connection_unusable() -> None:
    async with wire(send(OK + OK), send(OK)) as server, client(server.url) as http:
        assert (await http.post(b"{}")).status == 200
        assert (await http.post(b"{}")).status == 200
    assert server.connections == 2


async def test_a_cancelled_request_drops_its_connection() -> None:
    async with wire(send(OK, pause=1.0)) as server, client(server.url) as http:
        task = asyncio.create_task(http.post(b"{}"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not http._open
        assert not http._idle


async def test_no_more_idle_connections_than_kept() -> None:
    async with wire(send(OK, pause=0.05)) as server, client(server.url, keep=2) as http:
        await asyncio.gather(*(http.post(b"{}") for _ in range(6)))
        assert server.connections == 6
        assert len(http._idle) == 2
        assert len(http._open) == 2


async def test_a_closed_client_refuses_and_closes_its_connections() -> None:
    async with wire(send(OK)) as server:
        http = client(server.url)
        await http.post(b"{}")
        await http.close()
        assert not http._open
        with pytest.raises(RequestFailed) as failed:
            await http.post(b"{}")
    assert not failed.value.sent


def test_only_http_urls_with_a_host() -> None:
    for url in ("ftp://afosto.app/graphql", "https:///graphql", "afosto.app/graphql"):
        with pytest.raises(ValueError, match="http:// or https://"):
            client(url)


def test_the_repr_never_shows_the_headers() -> None:
    assert "key-0123456789" not in repr(client("https://afosto.app/graphql"))


# -- TLS against aiohttp's server ---------------------------------------------------------


@asynccontextmanager
async def tls_server(ca: trustme.CA) -> AsyncIterator[str]:
    async def graphql(request: web.Request) -> web.Response:
        return web.json_response({"seen": (await request.read()).decode()})

    app = web.Application()
    app.router.add_post("/graphql", graphql)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield f"https://localhost:{runner.addresses[0][1]}/graphql"
    finally:
        await runner.cleanup()


async def test_https_verifies_the_server_and_keeps_the_connection() -> None:
    ca = trustme.CA()
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    async with tls_server(ca) as url:
        async with Http11Client(url, {}, ssl_context=trusted) as http:
            answers = [await http.post(b"{}") for _ in range(3)]
            assert len(http._open) == 1
        async with Http11Client(url, {}) as untrusting:  # the system's CAs only
            with pytest.raises(RequestFailed) as failed:
                await untrusting.post(b"{}")
    assert {(a.status, a.body) for a in answers} == {(200, b'{"seen": "{}"}')}
    assert not failed.value.sent
    assert "SSL" in str(failed.value)


# -- the same on uvloop, the service's default loop (its transports are no asyncio.Transport) --

ON_BOTH_LOOPS = sorted(
    (name, test)
    for name, test in globals().items()
    if name.startswith("test_")
    and inspect.iscoroutinefunction(test)
    and not inspect.signature(test).parameters
)


@pytest.mark.parametrize(("name", "test"), ON_BOTH_LOOPS, ids=[n for n, _ in ON_BOTH_LOOPS])
def test_on_uvloop(name: str, test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test())
