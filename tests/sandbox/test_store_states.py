"""Stateful property test: any sequence of ship, cancel, return, approve, finish and invoice
keeps the books straight."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sandbox import LineSpec, Store
from sandbox.errors import ApiError
from sandbox.model import Unit, returnable, shippable
from tests.sandbox.helpers import consumer


class OrderLife(RuleBasedStateMachine):
    """Two orders of one customer (one per policy) driven through random steps."""

    @initialize(quantities=st.lists(st.integers(1, 3), min_size=1, max_size=3))
    def create(self, quantities: list[int]) -> None:
        self.store = Store()
        customer = consumer(self.store)
        lines = [
            LineSpec(f"S{i}", f"P{i}", 100 * (i + 7), q, (21, 9, 0)[i])
            for i, q in enumerate(quantities)
        ]
        self.orders = [
            self.store.create_order(customer, lines),
            self.store.create_order(customer, lines, policy="ON_OPEN"),
        ]

    def _units(self, data: st.DataObject, allowed: Callable[[Unit], bool]) -> tuple[str, list[str]]:
        order = data.draw(st.sampled_from(self.orders))
        candidates = [u.id for u in order.all_units() if u.contra_of is None and allowed(u)]
        chosen = data.draw(st.lists(st.sampled_from(candidates), unique=True)) if candidates else []
        return order.id, chosen

    @rule(data=st.data())
    def ship(self, data: st.DataObject) -> None:
        order_id, ids = self._units(data, shippable)
        if ids:
            assert self.store.ship(order_id, ids) == ids

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id, ids = self._units(data, shippable)
        if ids:
            self.store.cancel(order_id, ids)

    @rule(data=st.data())
    def return_units(self, data: st.DataObject) -> None:
        order_id, ids = self._units(data, returnable)
        if ids:
            self.store.return_units(order_id, ids)

    @rule(finish=st.booleans())
    def approve(self, finish: bool) -> None:
        for order in self.orders:
            self.store.approve(order.id, finish=finish)

    @rule()
    def finish(self) -> None:
        for order in self.orders:
            self.store.finish(order.id)

    @rule(data=st.data())
    def invoice(self, data: st.DataObject) -> None:
        invoiceable = [i for ids in self.store.invoiceable().values() for i in ids]
        if not invoiceable:
            return
        chosen = data.draw(st.lists(st.sampled_from(invoiceable), min_size=1, unique=True))
        invoice = self.store.invoice_items(chosen)
        assert invoice.item_ids == frozenset(chosen)
        with pytest.raises(ApiError) as refused:
            self.store.invoice_items(chosen)
        assert refused.value.code == "VALIDATION_ERROR"

    @invariant()
    def books_are_straight(self) -> None:
        invoiced: dict[str, int] = {}
        for invoice in self.store.invoices.values():
            assert invoice.total_ex_vat + sum(v.amount for v in invoice.vat) == invoice.total
            for line in invoice.lines:
                for item_id in line.ids:
                    assert item_id not in invoiced, "an item on two invoices"
                    invoiced[item_id] = line.unit_price
        for order in self.orders:
            under_invoice = {i for a in order.actions if a.action == "INVOICE" for i in a.ids}
            assert not under_invoice & invoiced.keys(), "an invoiced item is still invoiceable"
            for unit in (u for u in order.all_units() if u.contra_of is None):
                net = invoiced.get(unit.id, 0)
                if unit.contra is not None:
                    assert unit.id in invoiced, "only invoiced units get a contra"
                    net += invoiced.get(unit.contra.id, 0)
                assert net in (0, unit.line.price), "never credit more than was invoiced"


OrderLife.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_order_life = OrderLife.TestCase
