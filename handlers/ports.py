"""What handlers may speak to, and what they hand back to the consume loop.

Handlers are plain async functions `(message, deps, ctx) -> list[Outgoing]`. They never touch
deliveries, channels or HTTP sessions: the consume loop publishes what they return, in order,
with publisher confirms, and only then acks the delivery (DESIGN §3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel

from handlers.pdf_timing import PdfDelayEstimator

if TYPE_CHECKING:
    from schemas.afosto import Invoice, Order

Stage = Literal["triggers", "intents", "pdf"]

CrashPoint = Literal[
    "after_receive",  # handler entry, before any Afosto call (issue and plan)
    "after_mutation_sent",  # invoiceItems committed, response not read (fired by the client)
    "after_mutation_returned",  # invoiceItems answered, nothing published yet (issue)
    "after_publish_before_ack",  # fired by the consume loop
    "during_pdf_poll",  # pdf handler, before querying the invoice
]


def no_crash(point: CrashPoint) -> None:
    """The production crash hook: crash points are for tests only."""


class AfostoApi(Protocol):
    """The three Afosto operations the pipeline needs (implemented in consumer/afosto)."""

    async def order(self, order_id: str) -> Order | None:
        """The order with its actions and invoices; None when Afosto says NOT_FOUND."""

    async def invoice(self, invoice_id: str) -> Invoice | None:
        """The invoice; None when Afosto says NOT_FOUND."""

    async def invoice_items(self, item_ids: Sequence[str], invoice_id: str) -> Invoice:
        """Create the invoice. Raises Conflict when refused or when the outcome is unknown."""


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware current time."""


class PdfTiming(Protocol):
    """When to look first at a new invoice's PDF, learnt from earlier looks (pdf_timing.py)."""

    def first_check(self) -> timedelta:
        """How long after creation to look at a new invoice's PDF first."""

    def observe(self, age: timedelta, ready: bool) -> None:
        """One look scheduled `age` after issue saw the invoice; `ready`: the PDF was there."""


@dataclass(frozen=True)
class Deps:
    api: AfostoApi
    clock: Clock
    pdf_deadline: timedelta
    recheck_deadline: timedelta
    # Tests make a named point raise or kill the process; wired in consumer/, never from env here.
    crash: Callable[[CrashPoint], None] = no_crash
    # Per process, like the consume loop's dedupe memory: each Deps learns on its own.
    pdf_timing: PdfTiming = field(default_factory=PdfDelayEstimator)


@dataclass(frozen=True)
class Context:
    """What the consume loop knows about the delivery being handled."""

    attempt: int  # 1 on the first delivery; counted in our own header, never x-death
    message_id: str | None
    correlation_id: str | None


@dataclass(frozen=True)
class Emit:
    """Publish an outbound event (`event.event_type` is the routing key) on the output exchange."""

    event: BaseModel
    event_id: str
    event_type: str
    correlation_id: str


@dataclass(frozen=True)
class Forward:
    """Send `message` to a pipeline stage, after `delay` (rounded up to a wait tier) if set."""

    stage: Stage
    message: BaseModel
    message_id: str
    correlation_id: str
    delay: timedelta | None = None


Outgoing = Emit | Forward


@dataclass(frozen=True)
class Route:
    """One row of the routing table: the stage's queue, how to read its bodies, its handler."""

    stage: Stage
    parse: Callable[[bytes, str | None, str | None], BaseModel]  # (body, content_type, message_id)
    handle: Callable[[BaseModel, Deps, Context], Awaitable[list[Outgoing]]]
    summary: Callable[
        [BaseModel], dict[str, str | None]
    ]  # event/order/invoice ids for the log line
