"""The broker connection: robust (reconnects and restores channels, queues and consumers)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from consumer.settings import AmqpSettings, redact_url

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker could not be reached or refused us; the message never holds the password."""


async def connect(amqp: AmqpSettings, *, name: str = "invoicer") -> AbstractRobustConnection:
    """Connect once (raising BrokerUnavailable); afterwards aio-pika reconnects by itself."""
    url = amqp.url.get_secret_value()
    safe = redact_url(url)
    try:
        connection = await asyncio.wait_for(
            aio_pika.connect_robust(
                url,
                timeout=amqp.connect_timeout.total_seconds(),
                client_properties={"connection_name": f"{name} {amqp.queue_prefix}"},
                reconnect_interval=1,
            ),
            timeout=amqp.connect_timeout.total_seconds() + 1,
        )
    except Exception as exc:
        detail = str(exc).replace(url, safe)
        password = urlsplit(url).password
        # As written or percent-decoded: either spelling may come back in a library's message.
        for spelling in {password, unquote(password)} if password else set():
            detail = detail.replace(spelling, "***")
        raise BrokerUnavailable(
            f"cannot connect to RabbitMQ at {safe}: {type(exc).__name__} {detail}".strip()
        ) from None
    connection.reconnect_callbacks.add(_reconnected)
    connection.close_callbacks.add(_lost)
    log.info("connected to RabbitMQ", extra={"broker": safe})
    return connection


def _reconnected(connection: Any) -> None:
    log.warning("reconnected to RabbitMQ; channels and consumers restored")


def _lost(connection: Any, exc: BaseException | None = None) -> None:
    if exc is not None and not isinstance(exc, asyncio.CancelledError):
        log.warning("connection to RabbitMQ lost: %s", type(exc).__name__)
