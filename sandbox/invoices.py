"""Invoices: lines grouped per order, sku and unit price, VAT per line and per rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.model import Customer, Order, Unit, VatAmount, vat_breakdown
from sandbox.money import vat_of


@dataclass(frozen=True)
class Reimbursement:
    status: str
    amount_paid: int
    amount_due: int


@dataclass(frozen=True)
class InvoiceLine:
    ids: list[str]
    order_id: str
    sku: str
    label: str
    quantity: int
    unit_price: int
    total: int
    total_ex_vat: int
    vat: VatAmount
    is_contra: bool


@dataclass(eq=False)
class Invoice:
    id: str
    number: str
    created_at: int
    customer: Customer
    orders: list[Order]
    lines: list[InvoiceLine]
    item_ids: frozenset[str]
    reimbursement: Reimbursement
    currency: str = "EUR"
    # Wall-clock second from which the PDF exists; None: it never appears (a fault).
    pdf_ready_at: float | None = None

    @property
    def subtotal(self) -> int:
        return sum(line.total for line in self.lines)

    @property
    def total(self) -> int:
        return self.subtotal

    @property
    def vat(self) -> list[VatAmount]:
        return vat_breakdown(line.vat for line in self.lines)

    @property
    def total_ex_vat(self) -> int:
        return sum(line.total_ex_vat for line in self.lines)

    @property
    def is_credit(self) -> bool:
        return self.total < 0


def build_lines(units: Sequence[Unit]) -> list[InvoiceLine]:
    """One line per order, sku, unit price (and rate), in order and line sequence."""
    groups: dict[tuple[int, str, int, int], list[Unit]] = {}
    for unit in sorted(units, key=lambda u: (u.order.seq, u.contra_of is not None, u.line.index)):
        key = (unit.order.seq, unit.line.sku, unit.price, unit.line.rate)
        groups.setdefault(key, []).append(unit)
    lines: list[InvoiceLine] = []
    for group in groups.values():
        first = group[0]
        total = first.price * len(group)
        vat = vat_of(total, first.line.rate)
        lines.append(
            InvoiceLine(
                ids=[u.id for u in group],
                order_id=first.order.id,
                sku=first.line.sku,
                label=first.line.label,
                quantity=len(group),
                unit_price=first.price,
                total=total,
                total_ex_vat=total - vat,
                vat=VatAmount(float(first.line.rate), vat),
                is_contra=first.contra_of is not None,
            )
        )
    return lines


def reimbursement_for(customer: Customer, total: int) -> Reimbursement:
    """Webshop consumers pay up front (credits are refunded); businesses pay on invoice."""
    if customer.organisation is None:
        return Reimbursement("REFUNDED" if total < 0 else "PAID", total, 0)
    return Reimbursement("OPEN", 0, total)
