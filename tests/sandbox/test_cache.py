"""The response cache never serves an answer the store or the clock has moved past."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

import sandbox
from sandbox.cache import ResponseCache
from tests.sandbox.helpers import gql, invoice_ids_of, simple_order, unit_ids
from tests.sandbox.operations import INVOICE_ITEMS_MUTATION, INVOICE_QUERY, ORDER_QUERY


def _actions(body: dict[str, Any]) -> dict[str, list[str]]:
    return {a["action"]: a["ids"] for a in body["data"]["order"]["actions"]}


def test_an_answer_computed_before_a_pdf_came_due_expires_at_that_moment() -> None:
    # A slow request (latency fault) is answered as of its arrival, after a faster one that
    # arrived later already saw the PDF come due: its answer must not outlive the due time.
    cache = ResponseCache()
    cache.pdf_scheduled(11.0)
    cache.put(("fast", "", None), 0, 12.0, b"pdf ready", "ok")
    cache.put(("slow", "", None), 0, 10.0, b"pdf null", "ok")
    assert cache.get(("slow", "", None), 0, 13.0) is None
    assert cache.get(("fast", "", None), 0, 13.0) is not None


async def test_order_answers_follow_every_change_over_http() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        order = simple_order(sb.store)

        async def actions() -> dict[str, list[str]]:
            return _actions(await gql(session, sb, ORDER_QUERY, {"id": order.id}))

        assert await actions() == {}
        assert await actions() == {}
        hits = sb.cache.hits
        assert hits >= 1
        sb.store.ship(order.id)
        ids = (await actions())["INVOICE"]
        assert sorted(ids) == sorted(unit_ids(order))
        mutation = {"input": {"items": ids, "invoice_id": "inv-cache"}}
        assert "errors" not in await gql(session, sb, INVOICE_ITEMS_MUTATION, mutation)
        after_invoice = await gql(session, sb, ORDER_QUERY, {"id": order.id})
        assert _actions(after_invoice) == {}
        assert [i["id"] for i in after_invoice["data"]["order"]["invoices"]] == ["inv-cache"]
        sb.store.return_units(order.id, unit_ids(order)[:1])
        contra = (await actions())["HANDLE_APPROVAL"]
        sb.store.approve(order.id, finish=False)
        assert await actions() == {"INVOICE": contra, "HANDLE_FINISH": contra}
        sb.store.finish(order.id)
        assert await actions() == {"INVOICE": contra}
        assert invoice_ids_of(order) == contra
        assert sb.cache.hits == hits, "no answer after a change may come from the cache"
        sb.cache.enabled = False
        await actions()
        await actions()
        assert sb.cache.hits == hits


async def test_invoice_answers_show_the_pdf_once_it_is_due_though_cached_before() -> None:
    faults = {"pdf_delay_min_s": 1.0, "pdf_delay_max_s": 1.0}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        order = simple_order(sb.store, policy="ON_OPEN")
        invoice = sb.store.invoice_items(unit_ids(order))
        assert invoice.pdf_ready_at is not None
        answers: list[tuple[float, float, str | None]] = []  # asked, answered, pdf_url
        while not answers or answers[-1][0] < invoice.pdf_ready_at + 0.2:
            asked = time.time()
            body = await gql(session, sb, INVOICE_QUERY, {"id": invoice.id})
            answers.append((asked, time.time(), body["data"]["invoice"]["pdf_url"]))
        assert sb.cache.hits > 0, "the polling was answered from the cache"
        # By when the answer was back, not when it was asked: on a loaded machine an answer
        # asked just before the due time can be computed after it.
        before = [url for _, answered, url in answers if answered < invoice.pdf_ready_at]
        after = [url for asked, _, url in answers if asked > invoice.pdf_ready_at]
        assert before
        assert after
        assert set(before) == {None}
        assert None not in after, "a request made after the due time got a cached null"
