"""Every invoiceItems rule of DESIGN §7, against the store directly."""

from __future__ import annotations

import pytest

from sandbox import LineSpec, Store
from sandbox.errors import ApiError
from tests.sandbox.helpers import business, consumer, invoice_ids_of, simple_order, unit_ids


def rejected(store: Store, items: list[str], invoice_id: str | None = None) -> ApiError:
    before = (len(store.invoices), store.invoiceable())
    with pytest.raises(ApiError) as caught:
        store.invoice_items(items, invoice_id)
    assert (len(store.invoices), store.invoiceable()) == before, "a rejection creates nothing"
    return caught.value


def extensions(error: ApiError) -> dict[str, object]:
    return dict(error.extensions or {})


def test_after_shipment_units_become_invoiceable_when_shipped() -> None:
    store = Store()
    order = simple_order(store)
    assert invoice_ids_of(order) == []
    first = unit_ids(order)[0]
    store.ship(order.id, [first])
    assert invoice_ids_of(order) == [first]


def test_on_open_units_are_invoiceable_at_once() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    assert invoice_ids_of(order) == unit_ids(order)


def test_invoiced_items_leave_invoice_and_the_entry_disappears() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    invoice = store.invoice_items(unit_ids(order))
    assert [a.action for a in order.actions] == []
    assert order.invoices == [invoice]
    assert invoice.number == "INV-000001"


def test_empty_items_rejected() -> None:
    error = rejected(Store(), [])
    assert extensions(error) == {"code": "VALIDATION_ERROR", "status": 422, "field": "items"}


def test_duplicate_items_rejected() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    first = unit_ids(order)[0]
    assert extensions(rejected(store, [first, first]))["field"] == "items"


def test_item_not_under_invoice_rejected() -> None:
    store = Store()
    order = simple_order(store)  # nothing shipped yet
    error = rejected(store, unit_ids(order)[:1])
    assert extensions(error)["code"] == "VALIDATION_ERROR"
    assert extensions(error)["field"] == "items"


def test_one_bad_id_rejects_the_whole_call() -> None:
    store = Store()
    order = simple_order(store)
    ids = unit_ids(order)
    store.ship(order.id, ids[:1])
    rejected(store, ids[:2])
    assert invoice_ids_of(order) == ids[:1]


def test_unknown_item_is_not_found() -> None:
    store = Store()
    error = rejected(store, ["no-such-item"])
    assert extensions(error)["code"] == "NOT_FOUND"


def test_items_of_different_customers_rejected() -> None:
    store = Store()
    a = simple_order(store, consumer(store, "a@example.nl"), policy="ON_OPEN")
    b = simple_order(store, business(store), policy="ON_OPEN")
    error = rejected(store, [unit_ids(a)[0], unit_ids(b)[0]])
    assert extensions(error)["field"] == "items"


def test_orders_of_one_customer_combine_on_one_invoice() -> None:
    store = Store()
    customer = business(store)
    a = simple_order(store, customer, policy="ON_OPEN")
    b = simple_order(store, customer, policy="ON_OPEN")
    invoice = store.invoice_items(unit_ids(a) + unit_ids(b))
    assert invoice.orders == [a, b]
    assert a.invoices == b.invoices == [invoice]
    assert invoice.reimbursement.status == "OPEN"
    assert invoice.reimbursement.amount_due == invoice.total


def test_existing_invoice_id_rejected_in_strict_mode() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    ids = unit_ids(order)
    store.invoice_items(ids, "inv-1")
    error = rejected(store, ids, "inv-1")
    assert extensions(error)["field"] == "invoice_id"


def test_existing_invoice_id_with_other_items_rejected_in_strict_mode() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    ids = unit_ids(order)
    store.invoice_items(ids[:1], "inv-1")
    assert extensions(rejected(store, ids[1:], "inv-1"))["field"] == "invoice_id"


def test_lenient_mode_returns_the_existing_invoice_for_the_identical_set() -> None:
    store = Store(lenient=True)
    order = simple_order(store, policy="ON_OPEN")
    ids = unit_ids(order)
    first = store.invoice_items(ids, "inv-1")
    again = store.invoice_items(list(reversed(ids)), "inv-1")
    assert again is first
    assert len(store.invoices) == 1


def test_lenient_mode_still_rejects_a_different_set() -> None:
    store = Store(lenient=True)
    order = simple_order(store, policy="ON_OPEN")
    ids = unit_ids(order)
    store.invoice_items(ids[:2], "inv-1")
    assert extensions(rejected(store, ids[1:], "inv-1"))["field"] == "invoice_id"


def test_invoice_numbers_are_sequential() -> None:
    store = Store()
    numbers = []
    for _ in range(3):
        order = simple_order(store, policy="ON_OPEN")
        numbers.append(store.invoice_items(unit_ids(order)).number)
    assert numbers == ["INV-000001", "INV-000002", "INV-000003"]


def test_lines_group_per_order_sku_and_price() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    invoice = store.invoice_items(list(reversed(unit_ids(order))))
    assert [(line.sku, line.quantity, line.unit_price, line.total) for line in invoice.lines] == [
        ("KOF", 2, 1299, 2598),
        ("MOK", 1, 2499, 2499),
    ]
    # 2598 at 9 %: 2598·100/109 = 2383.49 → 2383, VAT 215; 2499 at 21 %: 2065.29 → 2065, VAT 434.
    assert [(v.rate, v.amount) for v in invoice.vat] == [(21.0, 434), (9.0, 215)]
    assert (invoice.total, invoice.total_ex_vat) == (5097, 4448)


def test_same_sku_and_price_on_two_order_lines_is_one_invoice_line() -> None:
    store = Store()
    lines = [
        LineSpec("MOK", "Mok", 2499, 1, 21),
        LineSpec("KOF", "Koffie", 1299, 1, 9),
        LineSpec("MOK", "Mok", 2499, 2, 21),
        LineSpec("MOK", "Mok (actie)", 1999, 1, 21),
    ]
    order = store.create_order(consumer(store), lines, policy="ON_OPEN")
    invoice = store.invoice_items(unit_ids(order))
    assert [(x.sku, x.unit_price, x.quantity) for x in invoice.lines] == [
        ("MOK", 2499, 3),
        ("KOF", 1299, 1),
        ("MOK", 1999, 1),
    ]
    assert invoice.lines[0].ids == unit_ids(order)[:1] + unit_ids(order)[2:4]
