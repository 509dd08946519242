"""plan → issue → pdf through the routing table over JSON bytes, against the fake Afosto."""

from __future__ import annotations

import random
from datetime import timedelta

from handlers.ports import Stage
from schemas.afosto import Order
from schemas.outbound import InvoiceCreated, PdfReady
from tests.unit.fakes import FakeAfosto, make_deps
from tests.unit.harness import drive, trigger


async def test_shipment_gives_one_invoice_then_its_pdf() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a", "b"])
    run = await drive(make_deps(api), api.clock, [("triggers", trigger("o1", "ev-1"))])
    assert run.failures == []
    assert [e.event_type for e in run.emitted] == ["invoice.created", "invoice.pdf_ready"]
    created, ready = (e.event for e in run.emitted)
    assert isinstance(created, InvoiceCreated)
    assert isinstance(ready, PdfReady)
    assert ready.invoice_id == created.invoice.id
    assert created.correlation_id == ready.correlation_id == "ev-1"


async def test_duplicates_and_replays_invoice_each_item_once() -> None:
    api = FakeAfosto()
    rng = random.Random(7)
    inbox: list[tuple[Stage, bytes]] = []
    for n in range(20):
        items = [f"o{n}-{u}" for u in range(rng.randint(1, 4))]
        api.add_order(f"o{n}", items)
        copies = 1 + (rng.random() < 0.5) + (rng.random() < 0.2)
        inbox += [("triggers", trigger(f"o{n}", f"ev-{n}"))] * copies
    rng.shuffle(inbox)
    run = await drive(make_deps(api), api.clock, inbox)
    assert run.failures == []
    invoiced = [i for inv in api.invoices.values() for i in inv.item_ids]
    assert len(invoiced) == len(set(invoiced))
    assert {o.id for o in api.orders.values() if o.invoiceable} == set()
    created = {e.event_id for e in run.events("invoice.created")}
    assert len(created) == len(api.invoices) == 20
    assert {e.event_id for e in run.events("invoice.pdf_ready")} != set()


async def test_early_return_becomes_a_credit_after_approval() -> None:
    api = FakeAfosto(prices={"c1": -1210})
    order = api.add_order("o1", [], pending={"HANDLE_APPROVAL": ["c1"]})
    deps = make_deps(api, recheck_deadline=timedelta(minutes=30))

    real_order = api.order

    async def approving_order(order_id: str) -> Order | None:
        if api.calls.count(("order", "o1")) >= 3:  # approved after a few re-checks
            order.pending, order.invoiceable = {}, ["c1"]
        return await real_order(order_id)

    api.order = approving_order  # type: ignore[method-assign]
    run = await drive(deps, api.clock, [("triggers", trigger("o1", "ret-1", "order.returned"))])
    assert run.failures == []
    (created,) = run.events("invoice.created")
    assert isinstance(created.event, InvoiceCreated)
    assert created.event.invoice.kind == "credit"
    assert created.event.invoice.total < 0
