"""In-memory stand-ins for the handler ports: an Afosto that keeps state, a settable clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers.errors import Conflict
from handlers.ports import Context, Deps, Forward
from schemas.afosto import Invoice, Order

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@dataclass
class FakeOrder:
    id: str
    customer_id: str = "cust-1"
    invoiceable: list[str] = field(default_factory=list)
    pending: dict[str, list[str]] = field(default_factory=dict)  # HANDLE_* action → ids
    invoice_ids: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)  # every unit id the order lists under items


@dataclass
class FakeAfosto:
    """Afosto's invoicing rules in miniature (strict invoice_id mode), with a few faults."""

    orders: dict[str, FakeOrder] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    prices: dict[str, int] = field(default_factory=dict)  # item id → cents incl. 21 % VAT
    clock: FakeClock = field(default_factory=FakeClock)
    pdf_after: timedelta | None = timedelta(seconds=3)  # None: the PDF never appears
    commit_then_lose_answer: int = 0  # next N mutations commit, then the outcome is unknown
    interleave: random.Random | None = None  # yield a random number of times inside calls: races
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def add_order(self, order_id: str, invoiceable: Sequence[str] = (), **kw: Any) -> FakeOrder:
        order = FakeOrder(order_id, invoiceable=list(invoiceable), **kw)
        order.units = sorted(set(order.units) | set(invoiceable))
        self.orders[order_id] = order
        return order

    def mutations(self) -> int:
        return sum(1 for name, _ in self.calls if name == "invoice_items")

    async def order(self, order_id: str) -> Order | None:
        self.calls.append(("order", order_id))
        await self._yield()
        o = self.orders.get(order_id)
        if o is None:
            return None
        actions = [{"action": "INVOICE", "ids": o.invoiceable}] if o.invoiceable else []
        actions += [{"action": a, "ids": ids} for a, ids in o.pending.items()]
        invoices = [
            {
                "id": i,
                "number": self.invoices[i].number,
                "lines": [{"ids": ln.ids} for ln in self.invoices[i].lines],
            }
            for i in o.invoice_ids
        ]
        return Order.model_validate(
            {
                "id": o.id,
                "number": f"ORD-{o.id}",
                "currency": "EUR",
                "customer": _customer(o.customer_id),
                "items": [{"ids": o.units, "sku": "S", "quantity": len(o.units)}],
                "actions": actions,
                "invoices": invoices,
                "unknown_field": {"is": "ignored"},
            }
        )

    async def invoice(self, invoice_id: str) -> Invoice | None:
        self.calls.append(("invoice", invoice_id))
        await self._yield()
        invoice = self.invoices.get(invoice_id)
        if invoice is None or invoice.pdf_url or self.pdf_after is None:
            return invoice
        if self.clock.now() >= invoice.created_at + self.pdf_after:
            invoice = invoice.model_copy(update={"pdf_url": f"https://pdf.test/{invoice_id}.pdf"})
            self.invoices[invoice_id] = invoice
        return invoice

    async def invoice_items(self, item_ids: Sequence[str], invoice_id: str) -> Invoice:
        self.calls.append(("invoice_items", (tuple(item_ids), invoice_id)))
        await self._yield()
        if invoice_id in self.invoices:
            raise Conflict("invoice_id exists", field="invoice_id")
        owners = {}
        for item in item_ids:
            owner = next((o for o in self.orders.values() if item in o.invoiceable), None)
            if owner is None:
                raise Conflict(f"{item} is not invoiceable", field="items")
            owners[item] = owner
        if len({o.customer_id for o in owners.values()}) > 1:
            raise Conflict("items of different customers", field="customer")
        invoice = self._create(item_ids, invoice_id, owners)
        await self._yield()
        if self.commit_then_lose_answer:
            self.commit_then_lose_answer -= 1
            raise Conflict("timed out", unknown_outcome=True)
        return invoice

    async def _yield(self) -> None:
        if self.interleave is not None:
            for _ in range(self.interleave.randint(0, 3)):
                await asyncio.sleep(0)

    def _create(
        self, item_ids: Sequence[str], invoice_id: str, owners: dict[str, FakeOrder]
    ) -> Invoice:
        lines = []
        for item in item_ids:
            owner = owners[item]
            owner.invoiceable.remove(item)
            total = self.prices.get(item, 1210)
            ex_vat = round(total * 100 / 121)
            lines.append(
                {
                    "ids": [item],
                    "order_id": owner.id,
                    "sku": f"SKU-{item}",
                    "label": "Thing",
                    "quantity": 1,
                    "unit_price": total,
                    "total": total,
                    "total_ex_vat": ex_vat,
                    "vat": {"rate": 21, "amount": total - ex_vat},
                    "is_contra": total < 0,
                }
            )
        for o in {o.id: o for o in owners.values()}.values():
            o.invoice_ids.append(invoice_id)
        total = sum(int(x["total"]) for x in lines)  # type: ignore[call-overload]
        ex_vat = sum(int(x["total_ex_vat"]) for x in lines)  # type: ignore[call-overload]
        first = next(iter(owners.values()))
        invoice = Invoice.model_validate(
            {
                "id": invoice_id,
                "number": f"INV-{len(self.invoices) + 1:05d}",
                "currency": "EUR",
                "created_at": int(self.clock.now().timestamp() * 1000),
                "customer": _customer(first.customer_id),
                "orders": [
                    {"id": o.id, "number": f"ORD-{o.id}"}
                    for o in {o.id: o for o in owners.values()}.values()
                ],
                "lines": lines,
                "subtotal": total,
                "total": str(total),  # Money may arrive as a numeric string
                "total_ex_vat": float(ex_vat),  # … or as a float
                "vat": [{"rate": 21, "amount": total - ex_vat}],
                "reimbursement": {"status": "OPEN", "amount_paid": 0, "amount_due": total},
                "pdf_url": None,
            }
        )
        self.invoices[invoice_id] = invoice
        return invoice


def _customer(customer_id: str) -> dict[str, Any]:
    return {
        "reference": None,
        "contact": {"id": customer_id, "email": f"{customer_id}@example.test"},
    }


def make_deps(api: FakeAfosto, **kw: Any) -> Deps:
    base: dict[str, Any] = {
        "api": api,
        "clock": api.clock,
        "pdf_deadline": timedelta(minutes=30),
        "recheck_deadline": timedelta(hours=1),
    }
    return Deps(**(base | kw))


CTX = Context(attempt=1, message_id=None, correlation_id=None)


def forwards(out: Sequence[object]) -> list[Forward]:
    """`out` when every item is a Forward (a test failure otherwise)."""
    assert all(isinstance(x, Forward) for x in out), out
    return [x for x in out if isinstance(x, Forward)]
