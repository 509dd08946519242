"""Broker-side faults and inspection: connection closes, outages, kill -9, queue depths.

Mode "proxy" confines every fault to the services (they connect through a TcpProxy);
"connections" closes the services' connections on the broker (`rabbitmqctl close_connection`,
our own user only) but keeps outages in the proxy; "real" also stops the broker
(`stop_app`/`start_app`, kill -9 + restart) and so hits everyone else on it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Literal

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from tests.support.tcp_proxy import TcpProxy

log = logging.getLogger(__name__)
BrokerMode = Literal["proxy", "connections", "real"]
BROKER_MODES: tuple[BrokerMode, ...] = ("proxy", "connections", "real")


@dataclass(frozen=True)
class QueueStat:
    name: str
    messages: int
    consumers: int


async def ctl(*args: str, limit: float = 60.0, tool: str = "rabbitmqctl") -> str:
    """Run a RabbitMQ CLI command; its stdout, or raise RuntimeError naming the failure."""
    try:
        proc = await asyncio.create_subprocess_exec(
            tool, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except FileNotFoundError:
        raise RuntimeError(f"{tool} is not installed here") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{tool} {args[0]} timed out after {limit}s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} {args[0]} failed: {err.decode(errors='replace')[:300]}")
    return out.decode(errors="replace")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 1):
            return True
    except OSError:
        return False


async def wait_port(host: str, port: int, within: float) -> float:
    """Seconds until the broker's port accepts connections (raise after `within`)."""
    started = time.monotonic()
    while not await asyncio.to_thread(port_open, host, port):
        if time.monotonic() - started > within:
            raise RuntimeError(f"broker port {host}:{port} still closed after {within}s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


class Broker:
    """Faults and facts about the broker for one chaos run."""

    def __init__(self, mode: BrokerMode, host: str, port: int, user: str) -> None:
        self.mode = mode
        self.host, self.port, self.user = host, port, user
        self.password = ""
        self.proxy = TcpProxy(host, port)
        self._down = asyncio.Lock()  # one outage at a time: overlapping ones would blur

    async def start(self) -> None:
        await self.proxy.start()

    async def close(self) -> None:
        await self.proxy.close()

    @property
    def service_port(self) -> int:
        """Where the services connect: through the proxy in both modes (so a proxy-only
        fault stays possible), which costs one local hop."""
        return self.proxy.port

    async def add_user(self, password: str) -> None:
        await ctl("add_user", self.user, password)
        await ctl("set_permissions", "-p", "/", self.user, ".*", ".*", ".*")

    async def delete_user(self) -> None:
        try:
            await ctl("delete_user", self.user)
        except RuntimeError as exc:
            log.warning("could not delete chaos user: %s", exc)

    async def close_connections(self) -> int:
        """Close the services' connections (all of them: `close_all_connections` narrowed to
        our user in real mode, the proxy's in proxy mode); returns how many."""
        if self.mode == "proxy":
            return self.proxy.drop()
        try:
            out = await ctl("-q", "--no-table-headers", "list_connections", "pid", "user")
        except RuntimeError:
            if self._down.locked():  # the broker is away: there is nothing to close
                return 0
            raise
        pids = [
            line.split("\t")[0]
            for line in out.splitlines()
            if line.count("\t") >= 1 and line.split("\t")[1].strip() == self.user
        ]
        for pid in pids:
            try:
                await ctl("close_connection", pid, "chaos: close_all_connections")
            except RuntimeError as exc:  # it may have gone meanwhile
                log.info("close_connection %s: %s", pid, exc)
        return len(pids)

    async def outage(self, seconds: float) -> None:
        """The broker goes away for `seconds` (`stop_app`/`start_app` in real mode)."""
        async with self._down:
            if self.mode != "real":
                await self.proxy.cut()
                await asyncio.sleep(seconds)
                await self.proxy.start()
                return
            await ctl("stop_app", limit=120)
            try:
                await asyncio.sleep(seconds)
            finally:
                await ctl("start_app", limit=180)
                await wait_port(self.host, self.port, 120)

    async def kill_and_restart(self, seconds: float) -> None:
        """kill -9 the broker's VM, then `rabbitmq-server -detached` (real mode only)."""
        if self.mode != "real":
            await self.outage(seconds)
            return
        async with self._down:
            await self._kill_and_restart(seconds)

    async def _kill_and_restart(self, seconds: float) -> None:
        raw = await ctl("eval", "os:getpid().")
        pid = int(raw.strip().strip('"'))
        os.kill(pid, signal.SIGKILL)
        try:
            await asyncio.sleep(seconds)
        finally:  # also when the run is cancelled: never leave the broker dead
            await self._start_server()

    async def _start_server(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            "rabbitmq-server",
            "-detached",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await proc.wait()
        await wait_port(self.host, self.port, 180)
        await ctl("await_startup", limit=180)

    async def ensure_up(self) -> None:
        """After the run, in real mode: the broker answers again, whatever happened."""
        if self.mode != "real" or await asyncio.to_thread(port_open, self.host, self.port):
            return
        log.warning("broker still down after the run: starting it")
        try:
            await ctl("start_app", limit=120)
        except RuntimeError:
            await self._start_server()
        await wait_port(self.host, self.port, 180)

    async def queue_stats(
        self, connection: AbstractRobustConnection, names: list[str]
    ) -> list[QueueStat]:
        """Ready messages and consumers per queue, by passive declare (no management API)."""
        stats = []
        async with connection.channel() as channel:
            for name in names:
                queue = await channel.declare_queue(name, passive=True)
                result = queue.declaration_result
                stats.append(QueueStat(name, result.message_count or 0, result.consumer_count or 0))
        return stats

    async def queue_totals(self, prefix: str) -> dict[str, tuple[int, int]]:
        """`rabbitmqctl list_queues name messages consumers` for our prefix (ready + unacked)."""
        out = await ctl("-q", "--no-table-headers", "list_queues", "name", "messages", "consumers")
        table: dict[str, tuple[int, int]] = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0].startswith(f"{prefix}."):
                table[parts[0]] = (int(parts[1]), int(parts[2]))
        return table


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """The harness's own robust connection, named so it can be told apart on the broker."""
    return await aio_pika.connect_robust(
        url, client_properties={"connection_name": name}, reconnect_interval=1
    )
