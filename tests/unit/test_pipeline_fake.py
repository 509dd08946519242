"""plan → issue → pdf through the routing table over JSON bytes, against the fake Afosto."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from handlers.ports import Stage
from schemas.afosto import Order
from schemas.internal import Intent
from schemas.outbound import InvoiceCreated, PdfReady
from tests.unit.fakes import FakeAfosto, make_deps
from tests.unit.harness import FakeTime, Run, drive, trigger


async def test_shipment_gives_one_invoice_then_its_pdf() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a", "b"])
    run = await drive(make_deps(api), FakeTime(api.clock), [("triggers", trigger("o1", "ev-1"))])
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
    run = await drive(make_deps(api), FakeTime(api.clock), inbox)
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
    run = await drive(
        deps, FakeTime(api.clock), [("triggers", trigger("o1", "ret-1", "order.returned"))]
    )
    assert run.failures == []
    (created,) = run.events("invoice.created")
    assert isinstance(created.event, InvoiceCreated)
    assert created.event.invoice.kind == "credit"
    assert created.event.invoice.total < 0


async def race(seed: int) -> tuple[FakeAfosto, list[Run]]:
    """Five events for one order while more units ship, interleaved by a seeded scheduler."""
    rng = random.Random(seed)
    api = FakeAfosto(interleave=rng)
    order = api.add_order("o1", ["a", "b"])
    deps = make_deps(api)

    async def ship_more() -> None:
        for item in ("c", "d", "e"):
            for _ in range(rng.randint(0, 4)):
                await asyncio.sleep(0)
            order.invoiceable.append(item)

    async def event(n: int) -> Run:
        for _ in range(rng.randint(0, 6)):
            await asyncio.sleep(0)
        return await drive(deps, FakeTime(api.clock), [("triggers", trigger("o1", f"ev-{n}"))])

    shipping = asyncio.create_task(ship_more())
    runs = list(await asyncio.gather(*(event(n) for n in range(5))))
    await shipping
    # one last event after everything shipped picks up whatever the race left behind
    runs.append(await drive(deps, FakeTime(api.clock), [("triggers", trigger("o1", "ev-last"))]))
    return api, runs


async def test_racing_events_for_one_order_invoice_each_item_once() -> None:
    conflicts = replans = 0
    for seed in range(30):
        api, runs = await race(seed)
        assert [f for r in runs for f in r.failures] == []
        invoiced = [i for inv in api.invoices.values() for i in inv.item_ids]
        assert sorted(invoiced) == ["a", "b", "c", "d", "e"], seed
        created = {e.event_id for r in runs for e in r.events("invoice.created")}
        assert len(created) == len(api.invoices)
        conflicts += api.mutations() - len(api.invoices)
        replans += sum(
            1
            for r in runs
            for f in r.forwarded
            if isinstance(f.message, Intent) and f.message.replans
        )
    # the seeds really exercised the conflict rule, including re-planning
    assert conflicts > 0
    assert replans > 0
