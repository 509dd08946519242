"""A small HTTP/1.1 client for the Afosto calls: one origin, POSTs of small JSON, kept-alive.

Why not aiohttp's client: per call it cost about twice the CPU of this one (docs/performance.md,
`bench/http_client.py`), and the service's backlog throughput is CPU-bound. The service only
POSTs JSON to one GraphQL URL, so it needs no cookies, redirects, proxies, compression or
streaming. Parsing is httptools (llhttp, the parser Node.js uses), so the wire format is not
hand-rolled: Content-Length, chunked and close-delimited bodies, 1xx answers, keep-alive.

Each connection carries one request at a time; the caller bounds how many run at once (the
Afosto limiter does), and at most `keep` idle connections are kept, none longer than
`idle_timeout` (servers drop idle keep-alive connections after 60-75 s; reusing one just as
it closes would turn a harmless query into a retry, or a mutation into an unknown outcome).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

MAX_ANSWER: Final = 16 * 1024 * 1024  # Afosto's answers are a few KiB; past this, refuse
IDLE_TIMEOUT: Final = 15.0  # as aiohttp's keepalive_timeout: well under common server limits


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None
    body: bytes


class RequestFailed(Exception):
    """No answer. `sent` is False only when the request provably never left this process
    (no connection, TLS refused, connect timeout); otherwise the server may have acted on it."""

    def __init__(self, reason: str, *, sent: bool, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.sent = sent
        self.timed_out = timed_out


class _Exchange(asyncio.Protocol):
    """One connection: writes a request, parses its answer, then waits idle in the pool."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[Answer] | None = None
        self.idle_since = 0.0
        self.reusable = True
        self._body = bytearray()
        self._size = 0
        self._retry_after: str | None = None
        self._status = 0
        self._delimited = False  # the answer says where its body ends (length or chunked)
        self._refusal: str | None = None  # why a callback stopped the parser

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports are no asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.answer is None:
            self._fail("the server sent data nobody asked for")  # an idle connection: drop it
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(self._refusal or f"malformed HTTP answer ({exc})")

    def eof_received(self) -> bool | None:
        self.reusable = False
        return None  # close the transport; connection_lost settles the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        answer = self.answer
        if answer is None or answer.done():
            return
        # Neither Content-Length nor chunked: the body ends where the connection does.
        if self._status and not self._delimited:
            self._settle()
        else:
            reason = f"connection lost ({type(exc).__name__})" if exc else "connection closed"
            answer.set_exception(RequestFailed(reason, sent=True))

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.answer is None or self.answer.done():
            self.reusable = False  # a second answer to one request: the stream is out of step
        self._body.clear()
        self._size = 0
        self._retry_after = None
        self._status = 0
        self._delimited = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"retry-after":
            self._retry_after = value.decode("latin-1").strip()
        elif name in (b"content-length", b"transfer-encoding"):
            self._delimited = True

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER:
            self._refusal = f"answer larger than {MAX_ANSWER} bytes"
            raise OverflowError(self._refusal)  # httptools stops parsing and raises
        self._body += body

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            return  # an interim answer (103 Early Hints, ...): the real one follows
        if not self.parser.should_keep_alive():
            self.reusable = False
        self._settle()

    # -- the pool's side ------------------------------------------------------------------

    def start(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer

    def finished(self) -> None:
        """The answer was taken; the connection goes idle."""
        self.answer = None
        self.idle_since = time.monotonic()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def usable(self, now: float) -> bool:
        return (
            self.reusable
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < IDLE_TIMEOUT
        )

    def _settle(self) -> None:
        answer = self.answer
        if answer is not None and not answer.done():
            answer.set_result(Answer(self._status, self._retry_after, bytes(self._body)))

    def _fail(self, reason: str) -> None:
        answer = self.answer
        if answer is not None and not answer.done():
            answer.set_exception(RequestFailed(reason, sent=True))
        self.abort()


class Http11Client:
    """POSTs to one URL over kept-alive connections; use as an async context manager."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        timeout: float = 10.0,
        keep: int = 16,
        connect_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the URL must be http:// or https:// with a host")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) if self._tls else None
        self._keep = max(keep, 1)
        self._timeout = timeout
        self._connect_timeout = min(connect_timeout, timeout)
        default_port = self._port == (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        authority = host if default_port else f"{host}:{self._port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        # Built once: the head of every request but its length (headers may carry the key).
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._idle: deque[_Exchange] = deque()
        self._open: set[_Exchange] = set()
        self._closed = False

    def __repr__(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"Http11Client({scheme}://{self._host}:{self._port}, {len(self._open)} open)"

    async def __aenter__(self) -> Http11Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection; a request still running fails with RequestFailed."""
        self._closed = True
        for exchange in list(self._open):
            exchange.abort()
        self._open.clear()
        self._idle.clear()

    async def post(self, body: bytes) -> Answer:
        """One request and its answer, within the client's `timeout` in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        exchange = await self._connection()
        request = b"%b%d\r\n\r\n%b" % (self._head, len(body), body)
        answer = exchange.start(request)
        # One timer handle per call: cheaper than asyncio.timeout(), which the profile showed.
        expiry = loop.call_at(deadline, _expire, answer, self._timeout)
        try:
            result = await answer
        except BaseException:
            self._discard(exchange)  # cancelled, timed out or broken: the stream is unusable
            raise
        finally:
            expiry.cancel()
        exchange.finished()
        if exchange.reusable and not self._closed and len(self._idle) < self._keep:
            self._idle.append(exchange)
        else:
            self._discard(exchange)
        return result

    async def _connection(self) -> _Exchange:
        if self._closed:
            raise RequestFailed("the client is closed", sent=False)
        now = time.monotonic()
        while self._idle:
            exchange = self._idle.pop()  # the most recently used: the least likely to be stale
            if exchange.usable(now):
                return exchange
            self._discard(exchange)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, exchange = await loop.create_connection(
                    _Exchange,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._tls else None,
                )
        except TimeoutError:
            raise RequestFailed("connect timed out", sent=False, timed_out=True) from None
        except (OSError, ssl.SSLError) as exc:
            raise RequestFailed(f"cannot connect ({type(exc).__name__})", sent=False) from None
        self._open.add(exchange)
        return exchange

    def _discard(self, exchange: _Exchange) -> None:
        exchange.abort()
        self._open.discard(exchange)


def _expire(answer: asyncio.Future[Answer], timeout: float) -> None:
    if not answer.done():
        reason = f"timed out after {timeout:g}s"
        answer.set_exception(RequestFailed(reason, sent=True, timed_out=True))
