"""Broker-delayed retries: which attempt a delivery is, and how long its next one waits."""

from __future__ import annotations

from datetime import timedelta

from aio_pika.abc import AbstractIncomingMessage

from consumer.amqp.publisher import ATTEMPT_HEADER
from handlers.errors import RateLimited, Transient


def attempt_of(message: AbstractIncomingMessage) -> int:
    """Our own attempt counter (1 on first delivery); x-death is never consulted."""
    value = (message.headers or {}).get(ATTEMPT_HEADER)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        return max(1, int(str(value))) if value is not None else 1
    except ValueError:
        return 1


def retry_delay(base: timedelta, attempt: int, error: Transient) -> timedelta:
    """base · 2^(attempt−1), and never sooner than a rate limit asked for."""
    delay: timedelta = base * 2 ** max(attempt - 1, 0)
    if isinstance(error, RateLimited) and error.retry_after:
        delay = max(delay, timedelta(seconds=error.retry_after))
    return delay
