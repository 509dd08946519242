"""bench/standin.py's state model: orders with their invoiceable units, invoices whose PDF is
ready from a set time, the call counts, and each order's and ready invoice's answer as bytes."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

PRICE, VAT_RATE = 1210, 21  # cents incl. VAT per unit; 21 %
EX_VAT = round(PRICE * 100 / (100 + VAT_RATE))


@dataclass
class Order:
    id: str
    number: str
    customer: dict[str, Any]
    units: list[str]
    invoiceable: list[str]
    invoices: list[str] = field(default_factory=list)
    answer: bytes | None = None  # the whole `order` answer, until this order changes


@dataclass
class Invoice:
    body: dict[str, Any]  # everything but pdf_url
    pdf_at: float  # time.monotonic() from which pdf_url is set
    ready: bytes | None = None  # the whole `invoice` answer once pdf_url is set


class State:
    """Orders, invoices and call counts; one process, one event loop, so no locks."""

    def __init__(self, *, seed: int, pdf_delay: float, pdf_delay_max: float, base: str) -> None:
        self.rng = random.Random(f"standin:{seed}")
        self.pdf_delay, self.pdf_delay_max = pdf_delay, max(pdf_delay, pdf_delay_max)
        self.base = base
        self.orders: dict[str, Order] = {}
        self.unit_order: dict[str, str] = {}
        self.invoices: dict[str, Invoice] = {}
        self.unit_invoices: dict[str, list[str]] = {}
        self.calls: Counter[tuple[str, str]] = Counter()

    def create_order(self, items: int) -> Order:
        n = len(self.orders) + 1
        order_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        contact = {"id": f"contact-{n}", "email": f"c{n}@example.com"}
        customer = {
            "reference": f"cust-{n}",
            "contact": {**contact, "given_name": "Bench", "family_name": f"Customer {n}"},
            "organisation": None,
        }
        units = [f"{order_id}-u{i}" for i in range(items)]
        order = Order(order_id, f"{100000 + n}", customer, units, list(units))
        self.orders[order_id] = order
        for unit in units:
            self.unit_order[unit] = order_id
        return order

    def order_data(self, order: Order) -> dict[str, Any]:
        invoices = [
            {
                "id": i,
                "number": self.invoices[i].body["number"],
                "lines": self.invoices[i].body["lines"],
            }
            for i in order.invoices
        ]
        return {
            "id": order.id,
            "number": order.number,
            "currency": "EUR",
            "customer": order.customer,
            "items": [
                {
                    "ids": order.units,
                    "sku": "SKU-1",
                    "label": "Bench item",
                    "quantity": len(order.units),
                }
            ],
            "actions": [{"action": "INVOICE", "ids": order.invoiceable}]
            if order.invoiceable
            else [],
            "invoices": invoices,
        }

    def invoice_items(self, items: list[str], invoice_id: str) -> dict[str, Any]:
        """The new invoice, or raise Refused."""
        if not items or len(set(items)) != len(items):
            raise Refused("VALIDATION_ERROR", "items must be unique and not empty", "items")
        if invoice_id in self.invoices:
            raise Refused("VALIDATION_ERROR", "invoice_id already exists", "invoice_id")
        order_ids = {self.unit_order.get(i) for i in items}
        if None in order_ids:
            raise Refused("NOT_FOUND", "unknown item id", "items")
        orders = [self.orders[o] for o in sorted(o for o in order_ids if o)]
        if len({o.customer["contact"]["id"] for o in orders}) > 1:
            raise Refused("VALIDATION_ERROR", "items of different customers", "items")
        if any(i not in o.invoiceable for o in orders for i in items if self.unit_order[i] == o.id):
            raise Refused("VALIDATION_ERROR", "item not invoiceable", "items")
        number = f"INV-{len(self.invoices) + 1:07d}"
        lines: list[dict[str, Any]] = []
        total = ex_vat = 0
        for order in orders:
            ids = [i for i in items if self.unit_order[i] == order.id]
            order.invoiceable = [i for i in order.invoiceable if i not in ids]
            order.invoices.append(invoice_id)
            order.answer = None
            line_total, line_ex_vat = PRICE * len(ids), EX_VAT * len(ids)
            total, ex_vat = total + line_total, ex_vat + line_ex_vat
            lines.append(
                {
                    "ids": ids,
                    "order_id": order.id,
                    "sku": "SKU-1",
                    "label": "Bench item",
                    "quantity": len(ids),
                    "unit_price": PRICE,
                    "total": line_total,
                    "total_ex_vat": line_ex_vat,
                    "vat": {"rate": VAT_RATE, "amount": line_total - line_ex_vat},
                    "is_contra": False,
                }
            )
        for unit in items:
            self.unit_invoices.setdefault(unit, []).append(invoice_id)
        body = {
            "id": invoice_id,
            "number": number,
            "currency": "EUR",
            "created_at": int(time.time() * 1000),
            "customer": orders[0].customer,
            "orders": [{"id": o.id, "number": o.number} for o in orders],
            "lines": lines,
            "subtotal": total,
            "total": total,
            "total_ex_vat": ex_vat,
            "vat": [{"rate": VAT_RATE, "amount": total - ex_vat}],
            "reimbursement": {"status": "OPEN", "amount_paid": 0, "amount_due": total},
        }
        delay = self.pdf_delay
        if self.pdf_delay_max > self.pdf_delay:
            delay = self.rng.uniform(self.pdf_delay, self.pdf_delay_max)
        invoice = Invoice(body, time.monotonic() + delay)
        self.invoices[invoice_id] = invoice
        return self.invoice_data(invoice, time.monotonic() >= invoice.pdf_at)

    def invoice_data(self, invoice: Invoice, ready: bool) -> dict[str, Any]:
        pdf_url = f"{self.base}/pdf/{invoice.body['id']}.pdf" if ready else None
        return {**invoice.body, "pdf_url": pdf_url}

    def order_answer(self, order: Order) -> bytes:
        if order.answer is None:
            order.answer = orjson.dumps({"data": {"order": self.order_data(order)}})
        return order.answer

    def invoice_answer(self, invoice: Invoice) -> bytes:
        if invoice.ready is not None:
            return invoice.ready
        ready = time.monotonic() >= invoice.pdf_at
        answer = orjson.dumps({"data": {"invoice": self.invoice_data(invoice, ready)}})
        if ready:
            invoice.ready = answer
        return answer

    def invoice_batch(self, variables: dict[str, Any]) -> bytes:
        """`{iN: invoice | null}`, with a NOT_FOUND error whose path names each unknown alias."""
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        now = time.monotonic()
        for alias, invoice_id in variables.items():
            invoice = self.invoices.get(invoice_id)
            if invoice is None:
                data[alias] = None
                message = f"invoice {invoice_id} not found"
                errors.append(
                    {"message": message, "path": [alias], "extensions": {"code": "NOT_FOUND"}}
                )
            else:
                data[alias] = self.invoice_data(invoice, now >= invoice.pdf_at)
        return orjson.dumps({"data": data, "errors": errors} if errors else {"data": data})

    def ledger(self) -> dict[str, Any]:
        calls: dict[str, dict[str, int]] = {}
        for (operation, outcome), count in sorted(self.calls.items()):
            calls.setdefault(operation, {})[outcome] = count
        return {
            "invoices": len(self.invoices),
            "items_invoiced": len(self.unit_invoices),
            "invoiced_more_than_once": {u: i for u, i in self.unit_invoices.items() if len(i) > 1},
            "calls": calls,
        }


class Refused(Exception):
    """An answer Afosto would refuse: its error code, message and the field at fault."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field
