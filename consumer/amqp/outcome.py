"""What became of a delivery: the one log line per message, and the metrics that go with it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from aio_pika.abc import AbstractIncomingMessage

from consumer.metrics import Metrics
from handlers.errors import DeadReason
from handlers.ports import Emit, Route
from schemas.internal import PdfCheck
from schemas.outbound import InvoiceCreated, PdfReady

log = logging.getLogger("consumer.pipeline")

Outcome = Literal["acked", "retried", "dead_lettered", "requeued"]
_LEVELS = {
    "acked": logging.INFO,
    "retried": logging.WARNING,
    "requeued": logging.WARNING,
    "dead_lettered": logging.ERROR,
}


@dataclass
class Fate:
    outcome: Outcome
    reason: DeadReason | str | None = None
    detail: str = ""
    delay: timedelta | None = None


def count_event(metrics: Metrics | None, emit: Emit, parsed: object) -> None:
    """Business metrics for a confirmed outbound event."""
    if metrics is None:
        return
    if isinstance(emit.event, InvoiceCreated):
        inv = emit.event.invoice
        metrics.invoice_created(inv.kind, inv.currency, inv.total)
    elif isinstance(emit.event, PdfReady):
        # From issue (the PDF existed at creation) occurred_at is the invoice's created_at.
        created = parsed.created_at if isinstance(parsed, PdfCheck) else emit.event.occurred_at
        age = datetime.now(UTC) - created
        metrics.time_to_pdf.observe(max(age.total_seconds(), 0.0))


def record(
    metrics: Metrics | None,
    route: Route,
    queue: str,
    message: AbstractIncomingMessage,
    attempt: int,
    summary: Mapping[str, str | None],
    fate: Fate,
    seconds: float,
) -> None:
    """Count the delivery and log its one outcome line (ids, attempt, outcome, duration)."""
    if metrics is not None:
        metrics.message_done(queue, fate.outcome, reason=fate.reason)
        metrics.child(metrics.handler_duration, route.stage).observe(seconds)
        if route.stage == "triggers" and message.timestamp is not None:
            stamp = message.timestamp
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            age = (datetime.now(UTC) - stamp).total_seconds()
            metrics.oldest_trigger_age.set(max(age, 0.0))
    log.log(
        _LEVELS[fate.outcome],
        "%s %s",
        route.stage,
        fate.outcome,
        extra={
            "stage": route.stage,
            "event_id": summary.get("event_id"),
            "order_id": summary.get("order_id"),
            "invoice_id": summary.get("invoice_id"),
            "message_id": message.message_id,
            "attempt": attempt,
            "outcome": fate.outcome,
            "reason": fate.reason,
            "detail": fate.detail[:300] or None,
            "retry_in": fate.delay.total_seconds() if fate.delay else None,
            "duration_ms": round(seconds * 1000, 1),
        },
    )
