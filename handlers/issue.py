"""Stage issue: intent → invoiceItems → invoice.created, then the first PDF check (DESIGN §3).

A refused or unknown-outcome mutation is never retried blindly: read `invoice(invoice_id)`
first; if it exists, continue as success (same deterministic event id); if not, re-plan the
intent's ids that are still invoiceable (the very same ids after an unknown outcome: retry
later, as a transient failure); none left means someone else invoiced them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from handlers.errors import Conflict, Permanent, Transient
from handlers.ids import event_id_for, intent_message_id, invoice_id_for, pdf_check_message_id
from handlers.pdf import pdf_ready
from handlers.plan import order_or_grace
from handlers.ports import Context, Deps, Emit, Forward, Outgoing
from schemas.afosto import Invoice
from schemas.internal import Intent, PdfCheck
from schemas.outbound import InvoiceCreated, InvoiceOut

# A VALIDATION_ERROR on these fields means "already invoiced / no longer invoiceable": re-plan.
# Any other field (different customers, currencies, …) cannot be fixed by retrying.
REPLANNABLE_FIELDS: Final = frozenset({None, "invoice_id", "items"})
MAX_REPLANS: Final = 5
SAME_SET_REPLAN_DELAY: Final = timedelta(seconds=5)


async def issue(intent: Intent, deps: Deps, ctx: Context) -> list[Outgoing]:
    """Create the invoice of the intent, or converge on the one that already exists."""
    deps.crash("after_receive")
    try:
        invoice = await deps.api.invoice_items(intent.item_ids, intent.invoice_id)
    except Conflict as conflict:
        return await _read_before_retry(intent, conflict, deps)
    deps.crash("after_mutation_returned")
    return issued(invoice, intent.correlation_id, deps)


def issued(invoice: Invoice, correlation_id: str, deps: Deps) -> list[Outgoing]:
    """invoice.created, then the first PDF check, or invoice.pdf_ready when the PDF exists.

    The check waits `deps.pdf_timing.first_check()`, the delay PDFs were seen to take, so one
    look usually finds it: fewer Afosto calls per invoice.
    """
    now = deps.clock.now()
    created = InvoiceCreated(
        event_id=event_id_for(invoice.id, "invoice.created"),
        occurred_at=invoice.created_at,
        correlation_id=correlation_id,
        invoice=InvoiceOut.from_afosto(invoice),
        order_ids=invoice.order_ids,
        item_ids=invoice.item_ids,
    )
    announce = Emit(created, created.event_id, created.event_type, correlation_id)
    if invoice.pdf_url:
        # Nothing to poll for. The loop publishes outputs in order, each confirmed before the
        # next, so pdf_ready still follows a confirmed invoice.created (DESIGN §3).
        return [announce, pdf_ready(invoice, invoice.pdf_url, invoice.created_at, correlation_id)]
    # Counted from now, on our clock (Afosto's created_at may be skewed); an invoice read back
    # after a conflict may be older, and then its first look is merely later than needed.
    delay = deps.pdf_timing.first_check()
    check = PdfCheck(
        invoice_id=invoice.id,
        invoice_number=invoice.number,
        correlation_id=correlation_id,
        order_ids=invoice.order_ids,
        created_at=invoice.created_at,
        seen_at=now,
        due_at=now + delay,
        check=1,
    )
    return [
        announce,
        Forward("pdf", check, pdf_check_message_id(invoice.id, 1), correlation_id, delay),
    ]


async def _read_before_retry(intent: Intent, conflict: Conflict, deps: Deps) -> list[Outgoing]:
    existing = await deps.api.invoice(intent.invoice_id)
    if existing is not None:
        if set(existing.item_ids) != set(intent.item_ids):
            # Our deterministic id on other items: publishing it would drop this intent's items.
            raise Permanent(
                "api_rejected",
                f"invoice {intent.invoice_id} exists at Afosto with items {list(existing.item_ids)}"
                f", not the intent's {list(intent.item_ids)} (order {intent.order_id})",
            )
        return issued(existing, intent.correlation_id, deps)
    if not conflict.unknown_outcome and conflict.field not in REPLANNABLE_FIELDS:
        raise Permanent(
            "api_rejected",
            f"invoiceItems refused invoice {intent.invoice_id} of order {intent.order_id} "
            f"(field {conflict.field}): {conflict.detail}",
        )
    order = await order_or_grace(deps, intent.order_id, f"intent {intent.invoice_id}")
    remaining = tuple(sorted(set(intent.item_ids) & set(order.invoiceable_ids)))
    if not remaining:
        return []  # invoiced by someone else (another event, another instance)
    invoice_id = invoice_id_for(remaining)
    if invoice_id == intent.invoice_id and conflict.unknown_outcome:
        # Afosto failed (5xx, timeout) and shows no invoice yet: an ordinary transient failure,
        # so the consume loop's growing delays and attempt cap apply, not the re-plan budget.
        raise Transient(
            f"invoiceItems for invoice {intent.invoice_id} of order {intent.order_id}: outcome "
            f"unknown, no invoice yet: {conflict.detail}"
        )
    if intent.replans >= MAX_REPLANS:
        raise Permanent(
            "api_rejected",
            f"invoice {intent.invoice_id} of order {intent.order_id} still refused after "
            f"{intent.replans} re-plans: {conflict.detail}",
        )
    again = intent.model_copy(
        update={"invoice_id": invoice_id, "item_ids": remaining, "replans": intent.replans + 1}
    )
    # The same set again means the refusal was not explained by the order: give Afosto a moment.
    delay = SAME_SET_REPLAN_DELAY if invoice_id == intent.invoice_id else None
    return [Forward("intents", again, intent_message_id(invoice_id), intent.correlation_id, delay)]
