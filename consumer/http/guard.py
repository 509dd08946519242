"""A header-read deadline in front of aiohttp's protocol, against slowloris clients.

aiohttp has no setting for "the request head must be complete within N seconds" (only recent
releases start the keep-alive timer when a connection opens). This proxy protocol gives every
new connection that deadline: unless the blank line ending the first request head has arrived
in time, the connection is aborted. Later requests on a kept-alive connection are covered by
aiohttp's keep-alive timer, which closes a connection still waiting for a complete request.
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

_HEAD_END: Final = b"\r\n\r\n"


class HeaderDeadline(asyncio.Protocol):
    """Forwards everything to `inner`; aborts the connection if the first head is late."""

    def __init__(self, inner: asyncio.Protocol, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._tail = b""  # the end of what came so far, to find a head end split across reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport has the Transport methods but is no subclass: no isinstance.
        self._transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._timeout, self._expire)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if _HEAD_END in seen:
                self._disarm()
            else:
                self._tail = seen[-(len(_HEAD_END) - 1) :]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
