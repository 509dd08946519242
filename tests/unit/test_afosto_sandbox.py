"""The client and the handlers against the sandbox over real HTTP (no broker involved)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

import sandbox
from consumer.afosto import AfostoClient
from handlers.errors import Conflict, RateLimited, Systemic
from handlers.ids import invoice_id_for
from handlers.ports import Deps, Stage
from sandbox.model import Contact, Customer
from sandbox.store import LineSpec
from schemas.outbound import InvoiceCreated, PdfReady
from tests.unit.harness import RealTime, SystemClock, drive, trigger

FAST_PDF = {"pdf_delay_min_s": 0.05, "pdf_delay_max_s": 0.2}


@asynccontextmanager
async def afosto(**kw: Any) -> AsyncIterator[tuple[Any, AfostoClient]]:
    kw.setdefault("faults", FAST_PDF)
    async with sandbox.running(**kw) as sb:
        client = AfostoClient(sb.graphql_url, SecretStr(sb.api_key), timeout=2.0, retry_budget=3.0)
        async with client:
            yield sb, client


def new_order(sb: Any, prices: tuple[int, ...] = (2499, 1000), customer: str = "c-1") -> Any:
    lines = [LineSpec(f"SKU{i}", f"Thing {i}", p, 1) for i, p in enumerate(prices)]
    return sb.store.create_order(Customer(Contact(customer, f"{customer}@example.test")), lines)


def deps_for(client: AfostoClient) -> Deps:
    return Deps(client, SystemClock(), timedelta(seconds=30), timedelta(seconds=20))


async def test_client_reads_orders_and_invoices_items_in_strict_mode() -> None:
    async with afosto() as (sb, client):
        order = new_order(sb)
        assert await client.order("no-such-order") is None
        seen = await client.order(order.id)
        assert seen is not None
        assert seen.invoiceable_ids == ()
        shipped = sb.store.ship(order.id)
        seen = await client.order(order.id)
        assert seen is not None
        assert seen.invoiceable_ids == tuple(sorted(shipped))
        invoice_id = invoice_id_for(shipped)
        invoice = await client.invoice_items(seen.invoiceable_ids, invoice_id)
        assert (invoice.id, invoice.total) == (invoice_id, 3499)
        assert sum(v.amount for v in invoice.vat) == invoice.total - invoice.total_ex_vat
        with pytest.raises(Conflict) as err:
            await client.invoice_items(seen.invoiceable_ids, invoice_id)
        assert err.value.field == "invoice_id"
        assert await client.invoice("no-such-invoice") is None
        assert sb.ledger.invoiced_more_than_once() == {}


async def test_lenient_mode_returns_the_existing_invoice() -> None:
    async with afosto(lenient=True) as (sb, client):
        order = new_order(sb)
        ids = sorted(sb.store.ship(order.id))
        first = await client.invoice_items(ids, invoice_id_for(ids))
        again = await client.invoice_items(ids, invoice_id_for(ids))
        assert again.id == first.id


async def test_wrong_key_is_systemic_and_ping_passes_with_the_right_one() -> None:
    async with afosto() as (sb, client):
        await client.ping()
        async with AfostoClient(sb.graphql_url, SecretStr("wrong")) as bad:
            with pytest.raises(Systemic):
                await bad.ping()


async def test_http_429_from_the_sandbox_is_rate_limited() -> None:
    faults = FAST_PDF | {"http_429_rate": 1.0, "retry_after_s": 30}
    async with afosto(faults=faults) as (_, client):
        with pytest.raises(RateLimited) as err:
            await client.order("x")
        assert err.value.retry_after is not None
        assert 25 <= err.value.retry_after <= 30


async def test_shipment_then_return_gives_an_invoice_its_pdf_and_a_credit() -> None:
    async with afosto() as (sb, client):
        order = new_order(sb, prices=(2499, 1000, 500))
        first = sb.store.ship(order.id, [u.id for u in order.lines[0].units])
        deps = deps_for(client)
        run = await drive(
            deps, RealTime(), [("triggers", trigger(order.id, "ship-1", item_ids=first))]
        )
        rest = sb.store.ship(order.id)
        run2 = await drive(
            deps, RealTime(), [("triggers", trigger(order.id, "ship-2", item_ids=rest))]
        )
        returned = sb.store.return_units(order.id, first)
        # the return is announced before it is approved: plan re-checks until it is
        inbox: list[tuple[Stage, bytes]] = [
            ("triggers", trigger(order.id, "ret-1", "order.returned", item_ids=returned))
        ]
        approve_later = _approve_after(sb, order.id, seconds=0.6)
        run3 = await drive(deps, RealTime(), inbox)
        await approve_later
        assert run.failures == run2.failures == run3.failures == []
        created = [e.event for r in (run, run2, run3) for e in r.events("invoice.created")]
        ready = [e.event for r in (run, run2, run3) for e in r.events("invoice.pdf_ready")]
        assert all(isinstance(c, InvoiceCreated) for c in created)
        assert all(isinstance(p, PdfReady) for p in ready)
        totals = [c.invoice.total for c in created if isinstance(c, InvoiceCreated)]
        kinds = [c.invoice.kind for c in created if isinstance(c, InvoiceCreated)]
        assert totals == [2499, 1500, -2499]
        assert kinds == ["invoice", "invoice", "credit"]
        assert len(ready) == 3
        assert sb.ledger.invoiced_more_than_once() == {}
        assert sb.store.invoiceable() == {}


def _approve_after(sb: Any, order_id: str, seconds: float) -> asyncio.Task[None]:
    async def approve() -> None:
        await asyncio.sleep(seconds)
        sb.store.approve(order_id)

    return asyncio.create_task(approve())


async def test_commit_then_timeout_reads_before_retrying() -> None:
    faults = FAST_PDF | {"hold_rate": 1.0, "hold_s": 1.0, "operations": ["mutation"]}
    async with sandbox.running(faults=faults) as sb:
        order = new_order(sb)
        sb.store.ship(order.id)
        async with AfostoClient(sb.graphql_url, SecretStr(sb.api_key), timeout=0.3) as client:
            run = await drive(deps_for(client), RealTime(), [("triggers", trigger(order.id, "e1"))])
        assert run.failures == []
        assert [e.event_type for e in run.emitted] == ["invoice.created", "invoice.pdf_ready"]
        assert sb.ledger.invoiced_more_than_once() == {}
        assert len(sb.ledger.invoices) == 1
