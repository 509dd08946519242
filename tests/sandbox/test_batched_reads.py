"""The service's aliased invoice reads (InvoiceBatch) at the sandbox: answers per alias,
one call in the ledger, faults per HTTP request, and the response cache keyed by query text."""

from __future__ import annotations

import time

import aiohttp

import sandbox
from consumer.afosto.operations import invoice_batch
from tests.sandbox.helpers import gql, simple_order, unit_ids


async def test_aliases_answer_each_invoice_and_not_found_names_its_alias() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        one = sb.store.invoice_items(unit_ids(simple_order(sb.store, policy="ON_OPEN")))
        two = sb.store.invoice_items(unit_ids(simple_order(sb.store, policy="ON_OPEN")))
        variables = {"i0": one.id, "i1": "no-such-invoice", "i2": two.id}
        body = await gql(session, sb, invoice_batch(3), variables)
        assert body["data"]["i0"]["id"] == one.id
        assert body["data"]["i1"] is None
        assert body["data"]["i2"]["id"] == two.id
        assert body["data"]["i2"]["total"] == two.total
        (error,) = body["errors"]
        assert (error["path"], error["extensions"]["code"]) == (["i1"], "NOT_FOUND")
        assert sum(n for (op, _), n in sb.ledger.calls.items() if op == "invoice") == 1


async def test_a_rate_limit_refuses_the_whole_batch_as_one_request() -> None:
    faults = {"rate_limit_rps": 0.001, "rate_limit_burst": 1}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        one = sb.store.invoice_items(unit_ids(simple_order(sb.store, policy="ON_OPEN")))
        variables = {"i0": one.id, "i1": one.id}
        assert "errors" not in await gql(session, sb, invoice_batch(2), variables)
        refused = await gql(session, sb, invoice_batch(2), variables)
        assert refused["data"] is None
        (error,) = refused["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert "path" not in error
        assert sb.ledger.calls[("invoice", "rate_limited")] == 1


async def test_a_cached_batch_answer_shows_the_pdf_once_it_is_due() -> None:
    faults = {"pdf_delay_min_s": 0.5, "pdf_delay_max_s": 0.5}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        one = sb.store.invoice_items(unit_ids(simple_order(sb.store, policy="ON_OPEN")))
        two = sb.store.invoice_items(unit_ids(simple_order(sb.store, policy="ON_OPEN")))
        assert one.pdf_ready_at is not None
        assert two.pdf_ready_at is not None
        due = max(one.pdf_ready_at, two.pdf_ready_at)
        variables = {"i0": one.id, "i1": two.id}
        first = await gql(session, sb, invoice_batch(2), variables)
        assert first["data"]["i0"]["pdf_url"] is None
        assert await gql(session, sb, invoice_batch(2), variables) == first
        assert sb.cache.hits >= 1
        while time.time() < due + 0.05:
            await gql(session, sb, invoice_batch(2), variables)
        later = await gql(session, sb, invoice_batch(2), variables)
        assert later["data"]["i0"]["pdf_url"] is not None
        assert later["data"]["i1"]["pdf_url"] is not None
