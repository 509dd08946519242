"""The events accounting consumes (DESIGN §5). Exact: unknown fields are rejected.

Delivery is at-least-once; `event_id` is deterministic per (invoice, event type), so consumers
dedupe on it. Amounts are integer cents; `kind` is `credit` when the total is negative.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import AwareDatetime, Field

from schemas.afosto import Invoice
from schemas.types import Outbound

SCHEMA_VERSION: Final = 1


class VatLine(Outbound):
    rate: float = Field(description="VAT percentage: 21 means 21 %.")
    amount: int = Field(description="VAT in cents.")


class InvoiceLineOut(Outbound):
    item_ids: tuple[str, ...] = Field(description="Order item (unit) ids this line invoices.")
    order_id: str
    sku: str
    label: str
    quantity: int
    unit_price: int = Field(description="Cents, including VAT; negative on credit lines.")
    total: int = Field(description="Cents, including VAT.")
    total_ex_vat: int
    vat: VatLine
    is_contra: bool = Field(description="True when the line credits earlier invoiced items.")


class OrderRef(Outbound):
    id: str
    number: str


class ContactOut(Outbound):
    id: str
    email: str
    given_name: str | None
    family_name: str | None


class OrganisationOut(Outbound):
    id: str
    name: str


class CustomerOut(Outbound):
    id: str = Field(description="Organisation id when there is one, else the contact id.")
    reference: str | None
    contact: ContactOut
    organisation: OrganisationOut | None


class ReimbursementOut(Outbound):
    status: str = Field(description="OPEN, PARTIALLY_PAID, PAID or REFUNDED (may grow).")
    amount_paid: int
    amount_due: int


class InvoiceOut(Outbound):
    id: str
    number: str
    kind: Literal["invoice", "credit"]
    currency: str = Field(description="ISO 4217 code.")
    subtotal: int
    total: int = Field(description="Cents, including VAT; negative on a credit invoice.")
    total_ex_vat: int
    vat: tuple[VatLine, ...] = Field(description="VAT breakdown, one entry per rate.")
    lines: tuple[InvoiceLineOut, ...]
    orders: tuple[OrderRef, ...]
    customer: CustomerOut
    reimbursement: ReimbursementOut
    created_at: AwareDatetime

    @classmethod
    def from_afosto(cls, invoice: Invoice) -> InvoiceOut:
        """The outbound view of an Afosto invoice."""
        c = invoice.customer
        return cls(
            id=invoice.id,
            number=invoice.number,
            kind="credit" if invoice.total < 0 else "invoice",
            currency=invoice.currency,
            subtotal=invoice.subtotal,
            total=invoice.total,
            total_ex_vat=invoice.total_ex_vat,
            vat=tuple(VatLine(rate=v.rate, amount=v.amount) for v in invoice.vat),
            lines=tuple(
                InvoiceLineOut(
                    item_ids=line.ids,
                    order_id=line.order_id,
                    sku=line.sku,
                    label=line.label,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    total=line.total,
                    total_ex_vat=line.total_ex_vat,
                    vat=VatLine(rate=line.vat.rate, amount=line.vat.amount),
                    is_contra=line.is_contra,
                )
                for line in invoice.lines
            ),
            orders=tuple(OrderRef(id=o.id, number=o.number) for o in invoice.orders),
            customer=CustomerOut(
                id=c.customer_id,
                reference=c.reference,
                contact=ContactOut(
                    id=c.contact.id,
                    email=c.contact.email,
                    given_name=c.contact.given_name,
                    family_name=c.contact.family_name,
                ),
                organisation=(
                    OrganisationOut(id=c.organisation.id, name=c.organisation.name)
                    if c.organisation
                    else None
                ),
            ),
            reimbursement=ReimbursementOut(
                status=invoice.reimbursement.status,
                amount_paid=invoice.reimbursement.amount_paid,
                amount_due=invoice.reimbursement.amount_due,
            ),
            created_at=invoice.created_at,
        )


class InvoiceCreated(Outbound):
    """An invoice (or credit invoice) exists at Afosto."""

    event_id: str = Field(description="Deterministic per (invoice, event type): dedupe on it.")
    event_type: Literal["invoice.created"] = "invoice.created"
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(description="The invoice's creation time at Afosto.")
    correlation_id: str = Field(description="The event id of the triggering order event.")
    invoice: InvoiceOut
    order_ids: tuple[str, ...]
    item_ids: tuple[str, ...] = Field(description="Every order item id on the invoice, sorted.")


class PdfReady(Outbound):
    """The invoice's PDF can be downloaded; always after the invoice's invoice.created."""

    event_id: str = Field(description="Deterministic per (invoice, event type): dedupe on it.")
    event_type: Literal["invoice.pdf_ready"] = "invoice.pdf_ready"
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(
        description="When the check that found the PDF was due, or the invoice's creation "
        "time when Afosto's answer to invoiceItems already carried the PDF (stable across "
        "redeliveries)."
    )
    correlation_id: str = Field(description="The event id of the triggering order event.")
    invoice_id: str
    invoice_number: str
    pdf_url: str


OutboundEvent = InvoiceCreated | PdfReady
