"""The GraphQL endpoint over real HTTP: auth, errors, queries and the mutation."""

from __future__ import annotations

import asyncio

import aiohttp

import sandbox
from tests.sandbox.helpers import gql, invoice_ids_of, simple_order
from tests.sandbox.operations import (
    INVOICE_ITEMS_MUTATION,
    INVOICE_QUERY,
    ORDER_QUERY,
    ORDERS_QUERY,
)


async def test_missing_or_wrong_key_is_unauthorized_with_http_200() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": sb.api_key}):
            async with session.post(
                sb.graphql_url, json={"query": '{ order(id: "x") { id } }'}, headers=headers
            ) as response:
                assert response.status == 200
                body = await response.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"] == {"code": "UNAUTHORIZED", "status": 401}


async def test_http_status_mode_sends_real_401() -> None:
    async with sandbox.running(http_status_mode=True) as sb, aiohttp.ClientSession() as session:
        response = await session.post(sb.graphql_url, json={"query": "{ __typename }"})
        assert response.status == 401
        assert (await response.json())["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"


async def test_unknown_order_and_invoice_are_not_found() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        for query, field in ((ORDER_QUERY, "order"), (INVOICE_QUERY, "invoice")):
            body = await gql(session, sb, query, {"id": "nope"})
            assert body["data"] == {field: None}
            assert body["errors"][0]["extensions"] == {"code": "NOT_FOUND", "status": 404}
            assert body["errors"][0]["path"] == [field]


async def test_invoice_an_order_end_to_end() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        order = simple_order(sb.store)
        sb.store.ship(order.id)
        data = (await gql(session, sb, ORDER_QUERY, {"id": order.id}))["data"]["order"]
        ids = data["actions"][0]["ids"]
        assert data["actions"][0]["action"] == "INVOICE"
        assert sorted(ids) == sorted(i for item in data["items"] for i in item["ids"])
        variables = {"input": {"items": ids, "invoice_id": "inv-e2e"}}
        body = await gql(session, sb, INVOICE_ITEMS_MUTATION, variables)
        invoice = body["data"]["invoiceItems"]["invoice"]
        assert invoice["id"] == "inv-e2e"
        assert (invoice["total"], invoice["total_ex_vat"], invoice["pdf_url"]) == (5097, 4448, None)
        assert invoice["orders"] == [{"id": order.id, "number": order.number}]
        again = await gql(session, sb, INVOICE_ITEMS_MUTATION, variables)
        assert again["data"] == {"invoiceItems": None}
        assert again["errors"][0]["extensions"]["field"] == "invoice_id"
        fetched = await gql(session, sb, INVOICE_QUERY, {"id": "inv-e2e"})
        assert fetched["data"]["invoice"] == invoice
        assert invoice_ids_of(order) == []
        assert sb.ledger.call_counts()["mutation"] == {"ok": 1, "validation_error": 1}


async def test_orders_pages_newest_first_with_filters() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        orders = [simple_order(sb.store) for _ in range(5)]
        sb.store.ship(orders[1].id)
        seen: list[str] = []
        after = None
        while True:
            page = await gql(session, sb, ORDERS_QUERY, {"first": 2, "after": after})
            connection = page["data"]["orders"]
            seen += [node["id"] for node in connection["nodes"]]
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
        assert seen == [o.id for o in reversed(orders)]
        invoiceable = await gql(session, sb, ORDERS_QUERY, {"action": "INVOICE"})
        assert [n["id"] for n in invoiceable["data"]["orders"]["nodes"]] == [orders[1].id]
        newest = orders[-1].created_at
        window = await gql(session, sb, ORDERS_QUERY, {"created_at": {"gt": newest}})
        assert window["data"]["orders"]["nodes"] == []
        too_many = await gql(session, sb, ORDERS_QUERY, {"first": 101})
        assert too_many["errors"][0]["extensions"]["field"] == "first"


async def test_document_errors_and_bad_bodies() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        body = await gql(session, sb, '{ order(id: "x") { formatted } }')
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        headers = {"Authorization": f"Bearer {sb.api_key}"}
        async with session.post(sb.graphql_url, data=b"{not json", headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_racing_mutations_invoice_each_item_once() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        order = simple_order(sb.store, policy="ON_OPEN")
        ids = invoice_ids_of(order)
        bodies = await asyncio.gather(
            *(
                gql(
                    session,
                    sb,
                    INVOICE_ITEMS_MUTATION,
                    {"input": {"items": ids, "invoice_id": f"r{n}"}},
                )
                for n in range(10)
            )
        )
        winners = [b for b in bodies if b["data"]["invoiceItems"] is not None]
        assert len(winners) == 1
        losers = [b["errors"][0]["extensions"] for b in bodies if b["data"]["invoiceItems"] is None]
        assert losers == [{"code": "VALIDATION_ERROR", "status": 422, "field": "items"}] * 9
        assert sb.ledger.invoiced_more_than_once() == {}
        assert len(sb.ledger.invoices) == 1


async def test_lenient_mode_over_http() -> None:
    async with sandbox.running(lenient=True) as sb, aiohttp.ClientSession() as session:
        order = simple_order(sb.store, policy="ON_OPEN")
        variables = {"input": {"items": invoice_ids_of(order), "invoice_id": "inv-lenient"}}
        first = await gql(session, sb, INVOICE_ITEMS_MUTATION, variables)
        again = await gql(session, sb, INVOICE_ITEMS_MUTATION, variables)
        assert "errors" not in again
        created, returned = (b["data"]["invoiceItems"]["invoice"] for b in (first, again))
        assert (returned["id"], returned["number"]) == (created["id"], created["number"])
        assert len(sb.ledger.invoices) == 1
        other = {"input": {"items": variables["input"]["items"][:1], "invoice_id": "inv-lenient"}}
        refused = await gql(session, sb, INVOICE_ITEMS_MUTATION, other)
        assert refused["errors"][0]["extensions"]["field"] == "invoice_id"
