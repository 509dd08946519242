"""Afosto GraphQL responses, as the service reads them (schema: shared/afosto/schema.graphql).

Every model ignores fields it does not know, Money tolerates int, float or numeric string, and
enum-like fields are plain strings so a value Afosto adds later never breaks parsing.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from schemas.types import AfostoModel, Money, UnixMillis

INVOICE_ACTION = "INVOICE"
PENDING_RETURN_ACTIONS = frozenset({"HANDLE_APPROVAL", "HANDLE_FINISH"})


class VatAmount(AfostoModel):
    rate: float  # a percentage: 21 means 21 %
    amount: Money


class Contact(AfostoModel):
    id: str
    email: str
    given_name: str | None = None
    family_name: str | None = None


class Organisation(AfostoModel):
    id: str
    name: str


class Customer(AfostoModel):
    reference: str | None = None
    contact: Contact
    organisation: Organisation | None = None

    @property
    def customer_id(self) -> str:
        """The stable id invoices group by: the organisation's when there is one."""
        return self.organisation.id if self.organisation else self.contact.id


class OrderAction(AfostoModel):
    action: str
    ids: tuple[str, ...] = ()


class OrderItem(AfostoModel):
    ids: tuple[str, ...] = ()
    sku: str | None = None
    label: str | None = None
    quantity: int | None = None


class InvoiceLine(AfostoModel):
    ids: tuple[str, ...]
    order_id: str
    sku: str
    label: str
    quantity: int
    unit_price: Money
    total: Money
    total_ex_vat: Money
    vat: VatAmount
    is_contra: bool = False


class InvoiceOrder(AfostoModel):
    id: str
    number: str

    @field_validator("number", mode="before")
    @classmethod
    def _number_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Reimbursement(AfostoModel):
    status: str
    amount_paid: Money
    amount_due: Money


class Invoice(AfostoModel):
    """The full invoice as `invoice(id:)` and `invoiceItems` return it."""

    id: str
    number: str
    currency: str
    created_at: UnixMillis
    customer: Customer
    orders: tuple[InvoiceOrder, ...]
    lines: tuple[InvoiceLine, ...]
    subtotal: Money
    total: Money
    total_ex_vat: Money
    vat: tuple[VatAmount, ...]
    reimbursement: Reimbursement
    pdf_url: str | None = None

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Every order item (unit) id on the invoice, sorted."""
        return tuple(sorted({i for line in self.lines for i in line.ids}))

    @property
    def order_ids(self) -> tuple[str, ...]:
        """Every order with items on the invoice, sorted."""
        return tuple(sorted({o.id for o in self.orders} | {line.order_id for line in self.lines}))


class LineIds(AfostoModel):
    ids: tuple[str, ...] = ()


class InvoicedItems(AfostoModel):
    """An order's invoice as the order query selects it: enough to know which ids it holds."""

    id: str
    number: str | None = None
    lines: tuple[LineIds, ...] = ()


class Order(AfostoModel):
    id: str
    number: str
    currency: str | None = None
    customer: Customer
    items: tuple[OrderItem, ...] = ()
    actions: tuple[OrderAction, ...] = ()
    invoices: tuple[InvoicedItems, ...] = Field(default=())

    @field_validator("number", mode="before")
    @classmethod
    def _number_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def action_ids(self, action: str) -> tuple[str, ...]:
        """Ids listed under `action`, sorted and without duplicates (absent: empty)."""
        return tuple(sorted({i for a in self.actions if a.action == action for i in a.ids}))

    @property
    def invoiceable_ids(self) -> tuple[str, ...]:
        return self.action_ids(INVOICE_ACTION)

    @property
    def listed_ids(self) -> frozenset[str]:
        """Ids under any action (INVOICE, HANDLE_APPROVAL, HANDLE_RESTOCK, …)."""
        return frozenset(i for a in self.actions for i in a.ids)

    @property
    def invoiced_ids(self) -> frozenset[str]:
        return frozenset(i for inv in self.invoices for line in inv.lines for i in line.ids)

    @property
    def pending_return_actions(self) -> tuple[str, ...]:
        """The return steps still open (HANDLE_APPROVAL, HANDLE_FINISH), sorted."""
        return tuple(sorted({a.action for a in self.actions if a.action in PENDING_RETURN_ACTIONS}))
