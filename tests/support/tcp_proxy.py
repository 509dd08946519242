"""One cuttable TCP proxy in front of the broker, for the integration tests and the chaos
harness: drop every connection (like `close_all_connections`) or refuse new ones (like
`stop_app`) without touching the broker itself."""

from __future__ import annotations

import asyncio
import contextlib

BROKER_HOST = "127.0.0.1"
BROKER_PORT = 5672


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the broker; `drop()` aborts every connection, `cut()`
    also stops listening until `restore()`; the port stays the same across cuts."""

    def __init__(self, target_host: str = BROKER_HOST, target_port: int = BROKER_PORT) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.accepted = 0

    async def start(self) -> None:
        """Listen (again, on the same port after a cut); a no-op while listening."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def restore(self) -> None:
        await self.start()

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            # Bounded: a server's wait_closed may wait for handlers that are still piping.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        self.drop()

    def drop(self) -> int:
        """Abort every proxied connection (both sides); returns how many client sides."""
        count = len(self._writers) // 2
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        return count

    async def close(self) -> None:
        """Cut for good and cancel every connection's task."""
        await self.cut()
        for task in list(self._tasks):
            task.cancel()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
