"""Asks the broker, not our own bookkeeping, how many consumers and messages a queue has."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import ChannelNotFoundEntity
from pydantic import SecretStr


@dataclass(frozen=True)
class QueueState:
    consumers: int
    messages: int


class QueueInspector(Protocol):
    async def queue_states(self, queues: Sequence[str]) -> dict[str, QueueState | None]:
        """Each queue's state as the broker reports it; None for a queue that does not exist."""


class BrokerInspector:
    """Passive queue declares over a small connection of its own.

    Its own connection keeps inspection away from the consuming channels: a passive declare
    of a missing queue closes the channel it ran on.
    """

    def __init__(self, url: SecretStr, *, timeout: float = 3.0) -> None:
        self._url = url
        self._timeout = timeout
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()

    async def queue_states(self, queues: Sequence[str]) -> dict[str, QueueState | None]:
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout * (1 + len(queues))):
                    return await self._ask(queues)
            except BaseException:  # also on cancellation: the connection state is unknown
                # A half-dead connection would fail every later check too: start afresh.
                await self.close()
                raise

    async def _ask(self, queues: Sequence[str]) -> dict[str, QueueState | None]:
        connection = await self._connect()
        states: dict[str, QueueState | None] = {}
        channel: AbstractChannel | None = None
        try:
            for name in queues:
                if channel is None or channel.is_closed:
                    channel = await connection.channel(publisher_confirms=False)
                try:
                    queue = await channel.declare_queue(name, passive=True)
                except ChannelNotFoundEntity:
                    states[name] = None
                    continue
                ok = queue.declaration_result
                states[name] = QueueState(ok.consumer_count or 0, ok.message_count or 0)
        finally:
            if channel is not None and not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()
        return states

    async def _connect(self) -> AbstractConnection:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(
                self._url.get_secret_value(), timeout=self._timeout
            )
        return self._connection

    async def close(self) -> None:
        """Close the inspection connection (a later question opens a new one)."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await connection.close()
