"""The ledger proves each item was invoiced exactly once and nothing invoiceable was missed."""

from __future__ import annotations

import aiohttp

import sandbox
from sandbox import Ledger, Store
from tests.sandbox.helpers import gql, simple_order, unit_ids
from tests.sandbox.operations import INVOICE_ITEMS_MUTATION, ORDER_QUERY


def test_invoices_are_recorded_per_item() -> None:
    store = Store()
    ledger = Ledger(store.invoiceable)
    store.on_invoice.append(ledger.record_invoice)
    order = simple_order(store)
    store.ship(order.id)
    assert ledger.never_invoiced() == {order.id: unit_ids(order)}
    invoice = store.invoice_items(unit_ids(order))
    assert ledger.item_invoices == {item: [invoice.id] for item in unit_ids(order)}
    assert ledger.invoiced_more_than_once() == {}
    assert ledger.never_invoiced() == {}


def test_an_item_on_two_invoices_is_reported() -> None:
    # The store itself refuses this; the ledger must still catch it if anything slipped through.
    store = Store()
    ledger = Ledger(store.invoiceable)
    order = simple_order(store, policy="ON_OPEN")
    invoice = store.invoice_items(unit_ids(order))
    ledger.record_invoice(invoice)
    ledger.record_invoice(invoice)
    assert ledger.invoiced_more_than_once() == {
        item: [invoice.id, invoice.id] for item in unit_ids(order)
    }


async def test_ledger_over_the_control_api() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        order = simple_order(sb.store, policy="ON_OPEN")
        await gql(session, sb, ORDER_QUERY, {"id": order.id})
        await gql(session, sb, ORDER_QUERY, {"id": "missing"})
        variables = {"input": {"items": unit_ids(order)[:1]}}
        await gql(session, sb, INVOICE_ITEMS_MUTATION, variables)
        await gql(session, sb, INVOICE_ITEMS_MUTATION, variables)
        async with session.get(f"{sb.base_url}/_control/ledger") as response:
            summary = await response.json()
        assert summary["calls"] == {
            "order": {"ok": 1, "not_found": 1},
            "mutation": {"ok": 1, "validation_error": 1},
        }
        assert (summary["invoices"], summary["credit_invoices"]) == (1, 0)
        assert summary["invoiced_more_than_once"] == {}
        assert summary["never_invoiced"] == {order.id: unit_ids(order)[1:]}
        async with session.get(f"{sb.base_url}/_control/ledger/invoices") as response:
            invoices = await response.json()
        assert [i["item_ids"] for i in invoices] == [unit_ids(order)[:1]]
