"""The Afosto client against a real HTTP server: error mapping, retries, timeouts."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from consumer.afosto import AfostoClient
from handlers.errors import Conflict, Permanent, Systemic, Transient
from handlers.ports import CrashPoint
from tests.unit.afosto_server import (
    INVOICE,
    KEY,
    ORDER,
    Reply,
    Sleeps,
    answer,
    client_for,
    gql_error,
    hang_up,
    slow,
)


async def test_order_query_sends_bearer_and_variables_and_parses_tolerantly() -> None:
    async with client_for(answer({"data": {"order": ORDER}})) as (client, script, _):
        order = await client.order("o1")
    assert order is not None
    assert order.number == "1042"
    assert order.invoiceable_ids == ("a", "b")
    assert script.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert script.requests[0]["variables"] == {"id": "o1"}
    assert script.requests[0]["query"].startswith("query Order(")


async def test_invoice_query_reads_money_as_int_float_or_string() -> None:
    async with client_for(answer({"data": {"invoice": INVOICE}})) as (client, _, _):
        invoice = await client.invoice("inv-1")
    assert invoice is not None
    line = invoice.lines[0]
    assert (line.total, line.total_ex_vat) == (1210, 1000)
    assert invoice.created_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("method", ["order", "invoice"])
async def test_not_found_is_none(method: str) -> None:
    async with client_for(gql_error("NOT_FOUND", status=404)) as (client, script, _):
        assert await getattr(client, method)("missing") is None
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        gql_error("UNAUTHORIZED"),
        gql_error("FORBIDDEN"),
        answer({"errors": [{"message": "no", "extensions": {"status": 401}}]}),
        answer("unauthorized", status=401),
        answer({}, status=403),
    ],
)
async def test_auth_failures_are_systemic_and_not_retried(reply: Reply) -> None:
    async with client_for(reply) as (client, script, _):
        with pytest.raises(Systemic):
            await client.order("o1")
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        gql_error("INTERNAL_SERVER_ERROR"),
        answer("<html>bad gateway</html>", status=502),
        answer("{not json"),
        answer({"data": "nope"}),
        gql_error("SOMETHING_ELSE"),
    ],
)
async def test_transient_failures_are_retried_three_times_then_raised(reply: Reply) -> None:
    async with client_for(reply) as (client, script, sleeps):
        with pytest.raises(Transient):
            await client.order("o1")
    assert len(script.requests) == 3
    assert len(sleeps.calls) == 2
    assert all(0 <= s <= 4 for s in sleeps.calls)


async def test_transient_then_success_returns_the_answer() -> None:
    replies = (answer({}, status=503), answer({"data": {"order": ORDER}}))
    async with client_for(*replies) as (client, script, _):
        assert await client.order("o1") is not None
    assert len(script.requests) == 2


async def test_query_timeout_is_transient() -> None:
    reply = slow(1.0, answer({"data": {"order": ORDER}}))
    async with client_for(reply, timeout=0.2, max_tries=2) as (client, script, _):
        with pytest.raises(Transient, match="timed out"):
            await client.order("o1")
    assert len(script.requests) == 2


async def test_mutation_returns_the_created_invoice() -> None:
    points: list[CrashPoint] = []
    reply = answer({"data": {"invoiceItems": {"invoice": INVOICE}}})
    async with client_for(reply, crash=points.append) as (client, script, _):
        invoice = await client.invoice_items(["a"], "inv-1")
        await client.order("o1")
    assert invoice.id == "inv-1"
    assert script.requests[0]["variables"] == {"input": {"items": ["a"], "invoice_id": "inv-1"}}
    assert points == ["after_mutation_sent"]


@pytest.mark.parametrize(
    ("reply", "field", "unknown"),
    [
        (gql_error("VALIDATION_ERROR", field="invoice_id"), "invoice_id", False),
        (gql_error("VALIDATION_ERROR", field="items"), "items", False),
        (gql_error("NOT_FOUND"), "items", False),
        (gql_error("INTERNAL_SERVER_ERROR"), None, True),
        (answer({}, status=500), None, True),
        (answer("<html>Not Found</html>", status=404), None, True),
        (answer({}, status=409), None, True),
        (answer("garbage"), None, True),
        (answer({"data": {"invoiceItems": None}}), None, True),
        (slow(1.0, answer({})), None, True),
        (hang_up, None, True),
    ],
)
async def test_mutation_refusals_and_unknown_outcomes_are_conflicts_sent_once(
    reply: Reply, field: str | None, unknown: bool
) -> None:
    async with client_for(reply, timeout=0.3) as (client, script, _):
        with pytest.raises(Conflict) as err:
            await client.invoice_items(["a"], "inv-1")
    assert (err.value.field, err.value.unknown_outcome) == (field, unknown)
    assert len(script.requests) == 1


async def test_mutation_refused_for_rate_is_retried() -> None:
    replies = (gql_error("RATE_LIMITED"), answer({"data": {"invoiceItems": {"invoice": INVOICE}}}))
    async with client_for(*replies) as (client, script, _):
        assert (await client.invoice_items(["a"], "inv-1")).id == "inv-1"
    assert len(script.requests) == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("call", [lambda c: c.order("o1"), lambda c: c.invoice_items(["a"], "i")])
async def test_connection_refused_is_transient_and_retried_even_for_the_mutation(
    call: Callable[[AfostoClient], Any],
) -> None:
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{free_port()}/graphql"
    async with AfostoClient(url, SecretStr(KEY), sleep=sleeps) as client:
        with pytest.raises(Transient, match="cannot connect"):
            await call(client)
    assert len(sleeps.calls) == 2


async def test_ping_accepts_not_found_and_rejects_a_bad_key() -> None:
    async with client_for(gql_error("NOT_FOUND")) as (client, _, _):
        await client.ping()
    async with client_for(gql_error("UNAUTHORIZED")) as (client, _, _):
        with pytest.raises(Systemic):
            await client.ping()


async def test_the_key_never_shows_in_reprs_or_errors() -> None:
    async with client_for(answer("boom", status=500)) as (client, _, _):
        with pytest.raises(Transient) as err:
            await client.order("o1")
        assert KEY not in repr(client)
    assert KEY not in str(err.value)
    assert KEY not in repr(err.value)


async def test_a_document_afosto_cannot_read_is_rejected_at_once() -> None:
    reply = answer(
        {"errors": [{"message": "bad", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]},
        status=400,
    )
    async with client_for(reply) as (client, script, _):
        with pytest.raises(Permanent) as err:
            await client.order("o1")
    assert err.value.reason == "api_rejected"
    assert len(script.requests) == 1
