"""Messages between our own stages: the intent (plan → issue) and the PDF check (→ pdf)."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from schemas.inbound import EventType
from schemas.parsing import decode_object, validate
from schemas.types import Internal


class Intent(Internal):
    """Invoice exactly these items under this id; confirmed by the broker before the mutation."""

    invoice_id: str
    order_id: str
    customer_id: str
    item_ids: tuple[str, ...] = Field(min_length=1)  # sorted, unique
    correlation_id: str  # the triggering event id
    event_type: EventType
    first_seen: AwareDatetime  # when plan first saw the trigger
    replans: int = Field(default=0, ge=0)  # intents re-planned after a conflict, to bound loops


class PdfCheck(Internal):
    """Look at the invoice's pdf_url; check n runs at `due_at`, until created_at + PDF_DEADLINE."""

    invoice_id: str
    invoice_number: str
    correlation_id: str
    order_ids: tuple[str, ...] = ()  # for the log line; checks queued before it existed lack it
    created_at: AwareDatetime  # the invoice's creation time at Afosto; the deadline counts from it
    # Our clock when issue saw the invoice (absent in checks queued by older versions): the PDF
    # delay estimate (handlers/pdf_timing.py) learns from due_at - seen_at, immune to skew.
    seen_at: AwareDatetime | None = None
    due_at: AwareDatetime  # when this check was scheduled to run
    check: int = Field(ge=1)


def parse_intent(body: bytes, content_type: str | None, message_id: str | None) -> Intent:
    """An intent from the intents queue (schema_violation if it is not one)."""
    return validate(Intent, decode_object(body, content_type))


def parse_pdf_check(body: bytes, content_type: str | None, message_id: str | None) -> PdfCheck:
    """A PDF check from the pdf queue (schema_violation if it is not one)."""
    return validate(PdfCheck, decode_object(body, content_type))
