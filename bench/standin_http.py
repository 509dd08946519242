"""HTTP/1.1 for bench/standin.py on a bare asyncio Protocol: a route table in, answers out.

aiohttp's web server cost the stand-in about twice the CPU, and the stand-in shares the
service's two cores in bench/pipeline.py. Parsing is httptools (llhttp), as in the service's
client (consumer/afosto/http11.py): split and pipelined requests, Content-Length and chunked
bodies, keep-alive. Every answer is JSON with a Content-Length; a broken request gets a 4xx and
the connection closes.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import NamedTuple, NoReturn, cast

import httptools
import orjson

MAX_HEAD, MAX_BODY = 64 * 1024, 64 * 1024 * 1024


class Request(NamedTuple):
    method: bytes
    path: bytes  # without the query
    auth: bytes | None  # Authorization: the one header the stand-in reads
    body: bytes


Handler = Callable[[Request], tuple[int, bytes]]  # → (status, JSON body)
Routes = Mapping[bytes, tuple[bytes, Handler]]  # path → (its method, handler); GET serves HEAD
Delay = Callable[[Request], float]  # seconds to hold a request before answering it


@asynccontextmanager
async def http_server(
    routes: Routes, host: str, port: int, *, delay: Delay | None = None
) -> AsyncIterator[int]:
    """Serve `routes` on (host, port) and yield the bound port; on exit, close every connection."""
    loop = asyncio.get_running_loop()
    live: set[_Connection] = set()
    server = await loop.create_server(lambda: _Connection(routes, delay, live), host, port)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for connection in list(live):
            connection.close()
        await server.wait_closed()


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS = {
    s: f"HTTP/1.1 {s} {HTTPStatus(s).phrase}\r\nContent-Type: application/json\r\n".encode()
    for s in (200, 201, 400, 404, 405, 413, 431, 500)
}


def _response(status: int, body: bytes, extra: bytes = b"", *, length: int = -1) -> bytes:
    """Status line, headers and body; `length` differs from len(body) only for HEAD."""
    if extra:
        extra += b"\r\n"
    size = len(body) if length < 0 else length
    return b"%sContent-Length: %d\r\n%s\r\n%s" % (_STATUS[status], size, extra, body)


def _answer(routes: Routes, request: Request) -> bytes:
    """The whole HTTP response to one request."""
    route = routes.get(request.path)
    if route is None:
        return _response(404, b'{"error": "not found"}')
    allowed, handler = route
    if request.method != allowed and not (request.method == b"HEAD" and allowed == b"GET"):
        return _response(405, b'{"error": "method not allowed"}', b"Allow: " + allowed)
    try:
        status, body = handler(request)
    except Exception:
        traceback.print_exc()  # as aiohttp logged it; the client sees a 500
        status, body = 500, b'{"error": "internal server error"}'
    return _response(status, b"" if request.method == b"HEAD" else body, length=len(body))


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Connection(asyncio.Protocol):
    """One client connection: requests are answered in order, as pipelining requires.

    Without a delay each answer is written from data_received (one write per read); with one,
    the requests queue up for one task per connection that waits and answers.
    """

    def __init__(self, routes: Routes, delay: Delay | None, live: set[_Connection]) -> None:
        self.routes, self.delay, self.live = routes, delay, live
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.out: list[bytes] = []  # what this read answered, written in one go
        self.done = False  # read no more: the client asked to close, or broke the framing
        self.late: asyncio.Queue[Request | bytes] | None = None
        self.worker: asyncio.Task[None] | None = None
        self.refusal: _Refusal | None = None  # why a callback stopped the parser
        # The request being read.
        self.begun = 0  # requests begun so far: tells whether a head began in this read
        self.head_bytes: int | None = None  # bytes read into a head still incomplete
        self.expect_continue = False
        self.url = b""
        self.auth: bytes | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.keep_alive = True

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self.live.add(self)
        if self.delay is not None:
            self.late = asyncio.Queue()
            self.worker = asyncio.get_running_loop().create_task(self._answer_late(self.late))

    def connection_lost(self, exc: Exception | None) -> None:
        self.live.discard(self)
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        begun = self.begun
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.done = True  # the request was answered; what follows it is no longer HTTP
        except httptools.HttpParserError as exc:
            if not self.done:  # llhttp refuses bytes after `Connection: close`; they are ignored
                self._refuse(self.refusal or _Refusal(400, f"bad request ({exc})"))
        else:
            # A head that began in an earlier read counts whole reads; one that began in this
            # read counts from the next, which is close enough for a limit.
            if self.head_bytes is not None:
                if begun == self.begun:
                    self.head_bytes += len(data)
                if self.head_bytes > MAX_HEAD:
                    self._refuse(_Refusal(431, "request head too large"))
            elif self.expect_continue:  # its head is here, its body is not yet
                self.expect_continue = False
                self._send(_CONTINUE)
        assert self.transport is not None
        out = self.out
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if self.done and self.late is None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.begun += 1
        self.head_bytes = 0
        self.expect_continue = False
        self.url, self.auth, self.body, self.size = b"", None, [], 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"authorization":
            self.auth = value if self.auth is None else self.auth
        elif name == b"content-length" and int(value) > MAX_BODY:  # llhttp checked the digits
            self._stop(_Refusal(413, "body too large"))
        elif name == b"expect":
            self.expect_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:  # a chunked body has no length up front
            self._stop(_Refusal(413, "body too large"))
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.expect_continue = False
        path = self.url.split(b"?", 1)[0]
        request = Request(self.parser.get_method(), path, self.auth, b"".join(self.body))
        self.done = not self.keep_alive
        if self.late is None:
            self.out.append(_answer(self.routes, request))
        else:
            self.late.put_nowait(request)

    # -- answers --------------------------------------------------------------------------

    def _stop(self, refusal: _Refusal) -> NoReturn:
        self.refusal = refusal
        raise refusal  # httptools stops parsing and raises HttpParserCallbackError

    def _refuse(self, refusal: _Refusal) -> None:
        self.done = True
        body = orjson.dumps({"error": str(refusal)})
        self._send(_response(refusal.status, body, b"Connection: close"))

    def _send(self, data: bytes) -> None:
        """Out with this read's answers, or behind the answers still waiting in the queue."""
        if self.late is None:
            self.out.append(data)
        else:
            self.late.put_nowait(data)

    async def _answer_late(self, late: asyncio.Queue[Request | bytes]) -> None:
        assert self.delay is not None
        while True:
            item = await late.get()
            if isinstance(item, Request):
                wait = self.delay(item)
                if wait > 0:
                    await asyncio.sleep(wait)
                item = _answer(self.routes, item)
            assert self.transport is not None
            self.transport.write(item)
            if self.done and late.empty():
                self.transport.close()
                return
