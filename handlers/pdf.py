"""Stage pdf: poll `invoice(id)` until pdf_url is set, through the wait tiers (DESIGN §3).

The deadline counts from the invoice's creation at Afosto (PDF_DEADLINE); past it the check
is dead-lettered `pdf_timeout`. `occurred_at` of invoice.pdf_ready is the due time of the
check that found the PDF, so a redelivered check publishes a byte-identical event (when issue
finds the PDF in the mutation's answer, it is the invoice's created_at, equally stable).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from handlers.delays import growing_delay, until_deadline
from handlers.errors import Permanent, Transient
from handlers.ids import event_id_for, pdf_check_message_id
from handlers.ports import Context, Deps, Emit, Forward, Outgoing
from schemas.afosto import Invoice
from schemas.internal import PdfCheck
from schemas.outbound import PdfReady

PDF_NEXT_FIRST: Final = timedelta(seconds=2)
PDF_CAP: Final = timedelta(seconds=60)
INVOICE_NOT_FOUND_ATTEMPTS: Final = 5


def pdf_ready(invoice: Invoice, url: str, occurred_at: datetime, correlation_id: str) -> Emit:
    """invoice.pdf_ready; `occurred_at` must be stable across redeliveries (same bytes)."""
    ready = PdfReady(
        event_id=event_id_for(invoice.id, "invoice.pdf_ready"),
        occurred_at=occurred_at,
        correlation_id=correlation_id,
        invoice_id=invoice.id,
        invoice_number=invoice.number,
        pdf_url=url,
    )
    return Emit(ready, ready.event_id, ready.event_type, correlation_id)


async def poll_pdf(check: PdfCheck, deps: Deps, ctx: Context) -> list[Outgoing]:
    """invoice.pdf_ready once the PDF exists; else the next check, later."""
    deps.crash("during_pdf_poll")
    invoice = await deps.api.invoice(check.invoice_id)
    if invoice is None:
        raise Transient(
            f"invoice {check.invoice_id} not found at Afosto",
            max_attempts=INVOICE_NOT_FOUND_ATTEMPTS,
        )
    # Misses only from first looks: later ones are made for slow or missing PDFs only, one
    # per look until the deadline (pdf_timing.py). Checks queued by older versions lack seen_at.
    if check.seen_at is not None and (invoice.pdf_url or check.check == 1):
        deps.pdf_timing.observe(check.due_at - check.seen_at, ready=bool(invoice.pdf_url))
    if invoice.pdf_url:
        return [pdf_ready(invoice, invoice.pdf_url, check.due_at, check.correlation_id)]
    now = deps.clock.now()
    deadline = check.created_at + deps.pdf_deadline
    if now >= deadline:
        raise Permanent(
            "pdf_timeout",
            f"invoice {invoice.id} ({invoice.number}) has no pdf_url {deps.pdf_deadline} after "
            f"creation, after {check.check} checks",
        )
    delay = until_deadline(
        growing_delay(check.check, first=PDF_NEXT_FIRST, cap=PDF_CAP), now, deadline
    )
    following = check.model_copy(update={"check": check.check + 1, "due_at": now + delay})
    return [
        Forward(
            "pdf",
            following,
            pdf_check_message_id(invoice.id, following.check),
            check.correlation_id,
            delay,
        )
    ]
