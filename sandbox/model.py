"""The sandbox's in-memory entities. Attribute names follow schema.graphql, so graphql-core's
default resolver reads them directly; derived fields are properties computed on access."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sandbox.money import vat_of

if TYPE_CHECKING:
    from sandbox.invoices import Invoice

Policy = Literal["AFTER_SHIPMENT", "ON_OPEN"]
# A reversal (cancel of an invoiced unit, or any return) waits for approval, then for finish.
Reversal = Literal["pending", "approved", "finished"]


@dataclass(frozen=True)
class Contact:
    id: str
    email: str
    given_name: str | None = None
    family_name: str | None = None


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str


@dataclass(frozen=True)
class Customer:
    """A customer is identified by its organisation when it has one, else by its contact."""

    contact: Contact
    organisation: Organisation | None = None
    reference: str | None = None

    @property
    def id(self) -> str:
        return self.organisation.id if self.organisation else self.contact.id


@dataclass(frozen=True)
class VatAmount:
    rate: float
    amount: int


@dataclass(eq=False)
class Unit:
    """One unit of an order line; contra units (negative) credit an invoiced original."""

    id: str
    line: OrderLine
    contra_of: Unit | None = None
    shipped: bool = False
    cancelled: bool = False
    returned: bool = False
    reversal: Reversal | None = None
    contra: Unit | None = None
    invoice_id: str | None = None

    @property
    def price(self) -> int:
        return -self.line.price if self.contra_of else self.line.price

    @property
    def order(self) -> Order:
        return self.line.order


@dataclass(eq=False)
class OrderLine:
    """A grouped order line as entered: sku, VAT-inclusive unit price, rate, and its units."""

    order: Order
    index: int
    sku: str
    label: str
    price: int
    rate: int
    units: list[Unit] = field(default_factory=list)


@dataclass(frozen=True)
class OrderItem:
    """The GraphQL view of a line (or of its contra units)."""

    ids: list[str]
    sku: str
    label: str
    quantity: int
    price: int
    total: int
    vat: VatAmount


@dataclass(frozen=True)
class OrderAction:
    action: str
    ids: list[str]


@dataclass(eq=False)
class Order:
    id: str
    number: str
    seq: int
    customer: Customer
    policy: Policy
    created_at: int
    updated_at: int
    currency: str = "EUR"
    lines: list[OrderLine] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)

    # The Store bumps `revision` on every change; derived fields are computed once per revision.
    revision: int = 0
    _view: OrderView | None = field(default=None, repr=False)

    def view(self) -> OrderView:
        view = self._view
        if view is None or view.revision != self.revision:
            view = self._view = OrderView.of(self)
        return view

    @property
    def items(self) -> list[OrderItem]:
        return self.view().items

    @property
    def total(self) -> int:
        return self.view().total

    @property
    def subtotal(self) -> int:
        return self.view().total

    @property
    def vat(self) -> list[VatAmount]:
        return self.view().vat

    @property
    def total_excluding_vat(self) -> int:
        return self.view().total - sum(v.amount for v in self.view().vat)

    @property
    def actions(self) -> list[OrderAction]:
        return self.view().actions

    @property
    def status(self) -> str:
        return self.view().status

    def all_units(self) -> list[Unit]:
        """Originals and contra units, in line order (part of the Python API)."""
        units: list[Unit] = []
        for line in self.lines:
            units.extend(line.units)
            units.extend(u.contra for u in line.units if u.contra is not None)
        return units


@dataclass(frozen=True)
class OrderView:
    """An order's derived fields at one revision."""

    revision: int
    items: list[OrderItem]
    total: int
    vat: list[VatAmount]
    actions: list[OrderAction]
    status: str

    @classmethod
    def of(cls, order: Order) -> OrderView:
        items: list[OrderItem] = []
        for line in order.lines:
            items.append(_order_item(line, line.units, line.price))
            contras = [u.contra for u in line.units if u.contra is not None]
            if contras:
                items.append(_order_item(line, contras, -line.price))
        invoice, approval, finish = order_actions(order)
        entries = [("INVOICE", invoice), ("HANDLE_APPROVAL", approval), ("HANDLE_FINISH", finish)]
        actions = [OrderAction(name, ids) for name, ids in entries if ids]
        unshipped = any(
            not u.cancelled and not u.shipped for line in order.lines for u in line.units
        )
        return cls(
            revision=order.revision,
            items=items,
            total=sum(item.total for item in items),
            vat=vat_breakdown(item.vat for item in items),
            actions=actions,
            status="OPEN" if unshipped or actions else "CLOSED",
        )


def shippable(unit: Unit) -> bool:
    """An original unit that can still ship (or be cancelled)."""
    return not unit.shipped and not unit.cancelled


def returnable(unit: Unit) -> bool:
    return unit.shipped and not unit.returned


def is_invoiceable(unit: Unit) -> bool:
    """Whether `unit` belongs under the order's INVOICE action right now."""
    if unit.invoice_id is not None:
        return False
    if unit.contra_of is not None:
        return unit.contra_of.reversal in ("approved", "finished")
    if unit.cancelled or unit.returned:
        return False
    return unit.shipped or unit.line.order.policy == "ON_OPEN"


def order_actions(order: Order) -> tuple[list[str], list[str], list[str]]:
    """Ids under INVOICE, HANDLE_APPROVAL and HANDLE_FINISH (contra ids where a contra exists)."""
    invoice: list[str] = []
    approval: list[str] = []
    finish: list[str] = []
    for line in order.lines:
        for unit in line.units:
            if is_invoiceable(unit):
                invoice.append(unit.id)
            handle_id = unit.contra.id if unit.contra else unit.id
            if unit.reversal == "pending":
                approval.append(handle_id)
            elif unit.reversal == "approved":
                finish.append(handle_id)
        for unit in line.units:
            if unit.contra is not None and is_invoiceable(unit.contra):
                invoice.append(unit.contra.id)
    return invoice, approval, finish


def vat_breakdown(amounts: Iterable[VatAmount]) -> list[VatAmount]:
    """Sum VAT amounts per rate, highest rate first."""
    per_rate: dict[float, int] = {}
    for vat in amounts:
        per_rate[vat.rate] = per_rate.get(vat.rate, 0) + vat.amount
    return [VatAmount(rate, amount) for rate, amount in sorted(per_rate.items(), reverse=True)]


def _order_item(line: OrderLine, units: list[Unit], price: int) -> OrderItem:
    total = price * len(units)
    return OrderItem(
        ids=[u.id for u in units],
        sku=line.sku,
        label=line.label,
        quantity=len(units),
        price=price,
        total=total,
        vat=VatAmount(float(line.rate), vat_of(total, line.rate)),
    )
