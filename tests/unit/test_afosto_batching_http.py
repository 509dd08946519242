"""Coalesced invoice reads through the client over real HTTP: the sandbox (aliases, NOT_FOUND
per alias, its rate limit) and a scripted server (per-alias outcomes, errors for everyone)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

import sandbox
from consumer.afosto import AfostoClient
from consumer.afosto.operations import document
from consumer.metrics import Metrics
from handlers.errors import RateLimited, Systemic, Transient
from handlers.ids import invoice_id_for
from schemas.afosto import Invoice
from tests.unit.afosto_server import INVOICE, Reply, answer, client_for, gql_error
from tests.unit.test_afosto_sandbox import afosto, new_order

# -- the client against the sandbox ---------------------------------------------------------


def invoiced(sb: Any, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        items = sorted(sb.store.ship(new_order(sb).id))
        ids.append(sb.store.invoice_items(items, invoice_id_for(items)).id)
    return ids


async def test_concurrent_reads_share_requests_at_the_sandbox_with_not_found_per_alias() -> None:
    # PDFs far off: a read repeated later must find the same invoice (no pdf_url meanwhile).
    async with afosto(faults={"pdf_delay_min_s": 60.0, "pdf_delay_max_s": 60.0}) as (sb, client):
        ids = invoiced(sb, 30)
        asked = [*ids[:10], "no-such-invoice", *ids[10:]]
        found = await asyncio.gather(*(client.invoice(i) for i in asked))
        assert [i.id if i else None for i in found] == [*ids[:10], None, *ids[10:]]
        assert all(i.total == 3499 for i in found if i)
        calls = sum(n for (op, _), n in sb.ledger.calls.items() if op == "invoice")
        assert calls == 2  # 31 ids: 25 + 6
        # And the same invoice read alone (the plain `invoice` query) is identical.
        assert await client.invoice(ids[0]) == found[0]
        assert await client.invoice("no-such-invoice") is None


async def test_a_rate_limited_batch_fails_every_caller_as_one_call() -> None:
    faults = {"rate_limit_rps": 0.001, "rate_limit_burst": 1, "pdf_delay_min_s": 0.05}
    async with afosto(faults=faults) as (sb, client):
        ids = invoiced(sb, 4)
        await client.invoice(ids[0])  # takes the only token
        results = await asyncio.gather(*(client.invoice(i) for i in ids), return_exceptions=True)
        assert all(isinstance(r, RateLimited) for r in results)
        assert sb.ledger.calls[("invoice", "rate_limited")] <= 3  # one batch, its tries


# -- the client against a scripted server -------------------------------------------------


def batch_reply(per_alias: Mapping[int, Any], errors: list[dict[str, Any]] | None = None) -> Reply:
    """`data.iN` from `per_alias` (else the invoice asked for), plus `errors`."""

    async def reply(request: web.Request) -> web.StreamResponse:
        variables = (await request.json())["variables"]
        data = {
            alias: per_alias.get(int(alias[1:]), INVOICE | {"id": invoice_id})
            for alias, invoice_id in variables.items()
        }
        return await answer({"data": data, "errors": errors} if errors else {"data": data})(request)

    return reply


def not_found(alias: str) -> dict[str, Any]:
    return {"message": "no", "path": [alias], "extensions": {"code": "NOT_FOUND"}}


async def test_a_batch_of_one_is_the_single_invoice_request() -> None:
    async with client_for(answer({"data": {"invoice": INVOICE}})) as (client, script, _):
        found = await client.invoice("inv-1")
    assert found is not None
    assert found.id == "inv-1"
    assert script.requests == [{"query": document("invoice"), "variables": {"id": "inv-1"}}]


async def test_one_unreadable_or_unknown_invoice_fails_only_its_caller() -> None:
    reply = batch_reply({1: {"id": "broken"}, 2: None, 3: None}, [not_found("i3")])
    metrics = Metrics()
    async with client_for(reply, metrics=metrics) as (client, script, _):
        ids = ["a", "b", "c", "d", "e"]
        results = await asyncio.gather(*(client.invoice(i) for i in ids), return_exceptions=True)
    assert isinstance(results[0], Invoice)
    assert results[0].id == "a"
    assert isinstance(results[1], Transient)
    assert results[2] is None
    assert results[3] is None
    assert isinstance(results[4], Invoice)
    assert results[4].id == "e"
    assert len(script.requests) == 1
    assert script.requests[0]["query"].startswith("query InvoiceBatch(")
    assert script.requests[0]["variables"] == {
        "i0": "a",
        "i1": "b",
        "i2": "c",
        "i3": "d",
        "i4": "e",
    }
    sample = metrics.registry.get_sample_value
    assert sample("invoicer_afosto_calls_total", {"operation": "invoice", "outcome": "ok"}) == 1


@pytest.mark.parametrize(
    ("reply", "error", "requests"),
    [
        (gql_error("RATE_LIMITED"), RateLimited, 3),
        (gql_error("UNAUTHORIZED"), Systemic, 1),
        (gql_error("INTERNAL_SERVER_ERROR"), Transient, 3),
        (answer("<html>bad gateway</html>", status=502), Transient, 3),
        # an error for every alias alike is the whole request's: mapped and retried as one
        (
            batch_reply(
                {0: None, 1: None},
                [
                    {"message": "x", "path": [a], "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
                    for a in ("i0", "i1")
                ],
            ),
            Transient,
            3,
        ),
        # RATE_LIMITED never concerns one alias, even when it names one
        (
            batch_reply(
                {0: None},
                [{"message": "x", "path": ["i0"], "extensions": {"code": "RATE_LIMITED"}}],
            ),
            RateLimited,
            3,
        ),
    ],
)
async def test_an_error_for_the_whole_request_reaches_every_caller(
    reply: Reply, error: type[Exception], requests: int
) -> None:
    async with client_for(reply) as (client, script, _):
        results = await asyncio.gather(
            *(client.invoice(i) for i in ("a", "b")), return_exceptions=True
        )
    assert all(type(r) is error or isinstance(r, error) for r in results), results
    assert len(script.requests) == requests  # the whole batch retried, not each caller


async def test_not_found_for_everybody_is_none_for_everybody() -> None:
    reply = batch_reply({0: None, 1: None}, [not_found("i0"), not_found("i1")])
    async with client_for(reply) as (client, script, _):
        assert list(await asyncio.gather(client.invoice("a"), client.invoice("b"))) == [None, None]
    assert len(script.requests) == 1


# -- fresh shared order reads against the sandbox -------------------------------------------


async def test_a_burst_of_order_reads_costs_two_calls_and_joiners_see_a_later_change() -> None:
    metrics = Metrics()
    async with (
        sandbox.running(faults={"latency_ms": 150.0}) as sb,
        AfostoClient(sb.graphql_url, SecretStr(sb.api_key), metrics=metrics) as client,
    ):
        order = new_order(sb)
        first = asyncio.ensure_future(client.order(order.id))
        await asyncio.sleep(0.05)  # the first read is out, asked for before the shipment
        shipped = sb.store.ship(order.id)
        burst = await asyncio.gather(*(client.order(order.id) for _ in range(6)))
        assert await first is not None  # may or may not show it: the sandbox waits, then reads
        assert all(o is not None and o.invoiceable_ids == tuple(sorted(shipped)) for o in burst)
        calls = sum(n for (op, _), n in sb.ledger.calls.items() if op == "order")
        assert calls == 2
        shared = metrics.registry.get_sample_value
        assert shared("invoicer_afosto_reads_shared_total", {"operation": "order"}) == 5
