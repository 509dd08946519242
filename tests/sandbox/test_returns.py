"""Cancel and return flows: approval, contra units and credit invoices."""

from __future__ import annotations

import pytest

from sandbox import Store
from tests.sandbox.helpers import action_ids, invoice_ids_of, simple_order, unit_ids


def test_return_of_invoiced_units_yields_contra_ids_after_approval() -> None:
    store = Store()
    order = simple_order(store)
    store.ship(order.id)
    original = store.invoice_items(invoice_ids_of(order))
    returned = unit_ids(order)[:2]  # both coffee units
    store.return_units(order.id, returned)
    pending = action_ids(order, "HANDLE_APPROVAL")
    assert len(pending) == 2
    assert not set(pending) & set(returned), "contra units get new ids"
    assert invoice_ids_of(order) == []
    store.approve(order.id)
    assert invoice_ids_of(order) == pending
    assert order.status == "OPEN"
    credit = store.invoice_items(pending)
    assert credit.is_credit
    assert [line.is_contra for line in credit.lines] == [True]
    line = credit.lines[0]
    assert (line.unit_price, line.total, line.vat.amount) == (-1299, -2598, -215)
    assert credit.total == -original.lines[0].total
    assert credit.reimbursement.status == "REFUNDED"
    assert order.invoices == [original, credit]
    assert [u.id for u in order.all_units()] == returned + pending + unit_ids(order)[2:]
    assert order.actions == []
    assert order.status == "CLOSED"


def test_approval_without_finish_shows_handle_finish_until_finished() -> None:
    store = Store()
    order = simple_order(store)
    store.ship(order.id)
    store.invoice_items(invoice_ids_of(order))
    store.return_units(order.id, unit_ids(order)[2:])
    contra = action_ids(order, "HANDLE_APPROVAL")
    assert store.approve(order.id, contra, finish=False) == contra
    assert action_ids(order, "HANDLE_FINISH") == contra
    assert invoice_ids_of(order) == contra
    assert store.finish(order.id) == contra
    assert action_ids(order, "HANDLE_FINISH") == []
    assert invoice_ids_of(order) == contra


def test_units_returned_before_invoicing_just_leave_invoice() -> None:
    store = Store()
    order = simple_order(store)
    store.ship(order.id)
    ids = unit_ids(order)
    store.return_units(order.id, ids[:1])
    assert invoice_ids_of(order) == ids[1:]
    assert action_ids(order, "HANDLE_APPROVAL") == ids[:1], "no contra: the original id waits"
    store.approve(order.id)
    assert invoice_ids_of(order) == ids[1:]
    assert len(store.units) == len(ids), "no contra unit was created"


def test_cancel_before_shipment_removes_units() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    ids = unit_ids(order)
    store.cancel(order.id, ids[:1])
    assert invoice_ids_of(order) == ids[1:]
    with pytest.raises(ValueError, match="cannot ship"):
        store.ship(order.id, ids[:1])


def test_cancel_of_invoiced_unit_credits_after_approval() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    ids = unit_ids(order)
    store.invoice_items(ids)
    store.cancel(order.id, ids[2:])
    store.approve(order.id)
    credit = store.invoice_items(invoice_ids_of(order))
    assert credit.total == -2499


def test_returns_need_shipped_units() -> None:
    store = Store()
    order = simple_order(store)
    with pytest.raises(ValueError, match="cannot be returned"):
        store.return_units(order.id, unit_ids(order)[:1])


def test_partial_shipments_add_up() -> None:
    store = Store()
    order = simple_order(store)
    ids = unit_ids(order)
    store.ship(order.id, ids[:1])
    first = store.invoice_items(invoice_ids_of(order))
    store.ship(order.id)
    second = store.invoice_items(invoice_ids_of(order))
    assert sorted(first.item_ids | second.item_ids) == sorted(ids)
    assert order.status == "CLOSED"
