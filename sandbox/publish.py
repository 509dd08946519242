"""Where the simulator's news goes: the input exchange (AMQP) and signed Afosto webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)
USER_AGENT = "Afosto/1.0 (+https://afosto.com/docs/webhooks)"


def compact_json(body: Any) -> bytes:
    """Afosto's serialization: compact, non-ASCII left raw, no trailing newline."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def sign(body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the raw body keyed with the secret's UTF-8 bytes."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class PublishError(Exception):
    """The broker did not take a message (closed channel, nack, timeout, connection lost)."""


class AmqpPublisher:
    """Publishes JSON events on a topic exchange, persistent, with publisher confirms."""

    def __init__(self, url: str, exchange: str) -> None:
        self._url = url
        self.exchange_name = exchange
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        """Publish and wait for the broker's confirm; PublishError when it does not come."""
        assert self._exchange is not None, "start() first"
        message = aio_pika.Message(
            body,
            content_type="application/json",
            content_encoding="utf-8",
            message_id=message_id,
            type=routing_key,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await self._exchange.publish(message, routing_key=routing_key, timeout=10)
        except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as exc:
            raise PublishError(f"{routing_key} {message_id}: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


@dataclass
class WebhookSender:
    """POSTs signed envelopes; retries non-2xx answers a few times like Afosto does."""

    url: str
    secret: str = field(repr=False)
    endpoint_id: str
    tenant: str
    attempts: int = 3
    backoff_s: float = 0.2
    deliveries: list[tuple[str, int]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    def headers(self, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Afosto-Hmac-Sha256": sign(body, self.secret),
            "X-Afosto-Endpoint": self.endpoint_id,
            "X-Afosto-Tenant": self.tenant,
        }

    async def send(self, body: bytes, message_id: str) -> int:
        """Deliver one envelope; the last HTTP status, or 0 if the endpoint was unreachable."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s),  # backoff_s, 2·backoff_s, …
            retry=retry_if_result(lambda status: not 200 <= status < 300),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else 0,
        )
        status: int = await retrying(self._post, body, message_id)
        self.deliveries.append((message_id, status))
        return status

    async def _post(self, body: bytes, message_id: str) -> int:
        assert self._session is not None, "start() first"
        try:
            async with self._session.post(self.url, data=body, headers=self.headers(body)) as r:
                return r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("webhook %s not delivered: %s", message_id, type(exc).__name__)
            return 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
