"""The stateful heart of the sandbox: orders, units, returns and the invoiceItems rules."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sandbox.errors import ApiError
from sandbox.invoices import Invoice, build_lines, reimbursement_for
from sandbox.model import (
    Customer,
    Order,
    OrderLine,
    Policy,
    Unit,
    is_invoiceable,
    returnable,
    shippable,
)


@dataclass(frozen=True)
class LineSpec:
    """What to put on a new order: `quantity` units of `sku` at `price` cents incl. VAT."""

    sku: str
    label: str
    price: int
    quantity: int
    rate: int = 21


class Store:
    """Orders and invoices in memory. Mutations raise ApiError and change nothing on failure."""

    def __init__(self, *, seed: int = 0, lenient: bool = False) -> None:
        self.lenient = lenient
        self.orders: dict[str, Order] = {}
        self.invoices: dict[str, Invoice] = {}
        self.units: dict[str, Unit] = {}
        self.on_invoice: list[Callable[[Invoice], None]] = []
        self._rng = random.Random(f"store:{seed}")
        self._order_seq = 0
        self.revision = 0  # bumped on every change; the response cache keys on it
        self._invoice_seq = 0
        self.clock: Callable[[], float] = time.time

    def new_id(self) -> str:
        """A seeded UUIDv4, so a seeded sandbox hands out the same ids every run."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- orders ---------------------------------------------------------------------------

    def create_order(
        self, customer: Customer, lines: Sequence[LineSpec], *, policy: Policy = "AFTER_SHIPMENT"
    ) -> Order:
        """A new OPEN order with one id per unit."""
        if not lines or any(spec.quantity < 1 for spec in lines):
            raise ValueError("an order needs lines with a positive quantity")
        if policy not in ("AFTER_SHIPMENT", "ON_OPEN"):
            raise ValueError(f"policy must be AFTER_SHIPMENT or ON_OPEN, got {policy!r}")
        self._order_seq += 1
        now = self.now_ms()
        order = Order(
            id=self.new_id(),
            number=f"ORD-{1000 + self._order_seq}",
            seq=self._order_seq,
            customer=customer,
            policy=policy,
            created_at=now,
            updated_at=now,
        )
        for index, spec in enumerate(lines):
            line = OrderLine(order, index, spec.sku, spec.label, spec.price, spec.rate)
            for _ in range(spec.quantity):
                unit = Unit(self.new_id(), line)
                line.units.append(unit)
                self.units[unit.id] = unit
            order.lines.append(line)
        self._bump(order)
        self.orders[order.id] = order
        return order

    def get_order(self, order_id: str) -> Order:
        """The order, or ApiError NOT_FOUND."""
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError("NOT_FOUND", f"order {order_id} not found")
        return order

    def ship(self, order_id: str, item_ids: Sequence[str] | None = None) -> list[str]:
        """Ship the given units (default: every unit still to ship); returns the shipped ids."""
        order = self.get_order(order_id)
        units = self._select(order, item_ids, shippable, "ship (shipped or cancelled)")
        for unit in units:
            unit.shipped = True
        return self._touched(order, units)

    def cancel(self, order_id: str, item_ids: Sequence[str]) -> list[str]:
        """Cancel unshipped units; invoiced ones get a contra unit awaiting approval."""
        order = self.get_order(order_id)
        units = self._select(order, item_ids, shippable, "be cancelled (shipped or cancelled)")
        for unit in units:
            unit.cancelled = True
            if unit.invoice_id is not None:
                self._reverse(unit)
        return self._touched(order, units)

    def return_units(self, order_id: str, item_ids: Sequence[str] | None = None) -> list[str]:
        """Return shipped units (default: all returnable); each waits for approval."""
        order = self.get_order(order_id)
        units = self._select(order, item_ids, returnable, "be returned (not shipped or returned)")
        for unit in units:
            unit.returned = True
            if unit.invoice_id is not None:
                self._reverse(unit)
            else:
                unit.reversal = "pending"
        return self._touched(order, units)

    def approve(
        self, order_id: str, item_ids: Sequence[str] | None = None, *, finish: bool = True
    ) -> list[str]:
        """Approve pending reversals (ids as under HANDLE_APPROVAL; default all): contra units
        become invoiceable; with finish=False they also stay under HANDLE_FINISH."""
        order = self.get_order(order_id)
        units = self._reversals(order, item_ids, "pending")
        for unit in units:
            unit.reversal = "finished" if finish else "approved"
        self._touched(order, units)
        return [u.contra.id if u.contra else u.id for u in units]

    def finish(self, order_id: str, item_ids: Sequence[str] | None = None) -> list[str]:
        """Finish approved reversals (ids as listed under HANDLE_FINISH; default all)."""
        order = self.get_order(order_id)
        units = self._reversals(order, item_ids, "approved")
        for unit in units:
            unit.reversal = "finished"
        self._touched(order, units)
        return [u.contra.id if u.contra else u.id for u in units]

    def invoiceable(self) -> dict[str, list[str]]:
        """Order id → ids currently under INVOICE, for every order that has any."""
        result: dict[str, list[str]] = {}
        for order in self.orders.values():
            for action in order.actions:
                if action.action == "INVOICE":
                    result[order.id] = list(action.ids)
        return result

    # -- invoices -------------------------------------------------------------------------

    def get_invoice(self, invoice_id: str) -> Invoice:
        """The invoice, or ApiError NOT_FOUND."""
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise ApiError("NOT_FOUND", f"invoice {invoice_id} not found")
        return invoice

    def invoice_items(self, item_ids: Sequence[str], invoice_id: str | None = None) -> Invoice:
        """The invoiceItems mutation, with every rule of DESIGN §7."""
        if not item_ids:
            raise ApiError("VALIDATION_ERROR", "items must not be empty", field="items")
        if len(set(item_ids)) != len(item_ids):
            raise ApiError("VALIDATION_ERROR", "items contains duplicate ids", field="items")
        if invoice_id is not None:
            if not invoice_id.strip():
                raise ApiError("VALIDATION_ERROR", "invoice_id is empty", field="invoice_id")
            existing = self.invoices.get(invoice_id)
            if existing is not None:
                if self.lenient and existing.item_ids == frozenset(item_ids):
                    return existing
                raise ApiError(
                    "VALIDATION_ERROR", f"invoice {invoice_id} already exists", field="invoice_id"
                )
        units = [self._invoiceable_unit(item_id) for item_id in item_ids]
        customers = {unit.order.customer.id for unit in units}
        if len(customers) > 1:
            raise ApiError("VALIDATION_ERROR", "items belong to different customers", field="items")
        return self._create_invoice(units, invoice_id or self.new_id())

    def _invoiceable_unit(self, item_id: str) -> Unit:
        unit = self.units.get(item_id)
        if unit is None:
            raise ApiError("NOT_FOUND", f"item {item_id} not found", field="items")
        if not is_invoiceable(unit):
            raise ApiError("VALIDATION_ERROR", f"item {item_id} is not invoiceable", field="items")
        return unit

    def _create_invoice(self, units: list[Unit], invoice_id: str) -> Invoice:
        self._invoice_seq += 1
        orders = sorted({u.order.seq: u.order for u in units}.values(), key=lambda o: o.seq)
        lines = build_lines(units)
        customer = units[0].order.customer
        invoice = Invoice(
            id=invoice_id,
            number=f"INV-{self._invoice_seq:06d}",
            created_at=self.now_ms(),
            customer=customer,
            orders=orders,
            lines=lines,
            item_ids=frozenset(u.id for u in units),
            reimbursement=reimbursement_for(customer, sum(line.total for line in lines)),
        )
        for unit in units:
            unit.invoice_id = invoice.id
        for order in orders:
            order.invoices.append(invoice)
            order.updated_at = invoice.created_at
            self._bump(order)
        self.invoices[invoice.id] = invoice
        for hook in self.on_invoice:
            hook(invoice)
        return invoice

    # -- helpers --------------------------------------------------------------------------

    def _bump(self, order: Order) -> None:
        """Invalidate derived views: the order's and the store-wide response cache."""
        order.revision += 1
        self.revision += 1

    def _reverse(self, unit: Unit) -> None:
        contra = Unit(self.new_id(), unit.line, contra_of=unit)
        unit.contra = contra
        unit.reversal = "pending"
        self.units[contra.id] = contra

    def _select(
        self,
        order: Order,
        item_ids: Iterable[str] | None,
        allowed: Callable[[Unit], bool],
        refusal: str,
    ) -> list[Unit]:
        """The named original units (default: every allowed one); ValueError if any is not."""
        originals = [u for line in order.lines for u in line.units]
        if item_ids is None:
            return [u for u in originals if allowed(u)]
        by_id = {u.id: u for u in originals}
        missing = [i for i in item_ids if i not in by_id]
        if missing:
            raise ValueError(f"order {order.id} has no items {missing}")
        units = [by_id[i] for i in dict.fromkeys(item_ids)]
        for unit in units:
            if not allowed(unit):
                raise ValueError(f"unit {unit.id} cannot {refusal}")
        return units

    def _reversals(self, order: Order, item_ids: Sequence[str] | None, state: str) -> list[Unit]:
        units = [u for line in order.lines for u in line.units if u.reversal == state]
        if item_ids is None:
            return units
        wanted = set(item_ids)
        chosen = [u for u in units if (u.contra.id if u.contra else u.id) in wanted]
        if len(chosen) != len(wanted):
            raise ValueError(f"not all of {sorted(wanted)} are awaiting {state} reversal")
        return chosen

    def _touched(self, order: Order, units: list[Unit]) -> list[str]:
        if units:
            order.updated_at = self.now_ms()
            self._bump(order)
        return [u.id for u in units]
