"""Faults as a client meets them over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest

import sandbox
from sandbox import Sandbox
from tests.sandbox.helpers import simple_order, unit_ids
from tests.sandbox.operations import INVOICE_ITEMS_MUTATION, ORDER_QUERY


async def post(
    session: aiohttp.ClientSession, sb: Sandbox, query: str = ORDER_QUERY, variables: Any = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {sb.api_key}"}
    payload = {"query": query, "variables": variables or {"id": "nope"}}
    async with session.post(sb.graphql_url, json=payload, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


def code(body: bytes) -> str:
    return str(json.loads(body)["errors"][0]["extensions"]["code"])


async def outcome_sequence(seed: int) -> list[str]:
    faults = {"http_500_rate": 0.2, "internal_error_rate": 0.2, "http_429_rate": 0.2}
    async with sandbox.running(seed=seed, faults=faults) as sb, aiohttp.ClientSession() as s:
        outcomes = []
        for _ in range(40):
            status, _, body = await post(s, sb)
            outcomes.append(f"{status}:{code(body) if status == 200 else ''}")
        return outcomes


async def test_same_seed_gives_the_same_faults_over_http() -> None:
    first, second, other = await asyncio.gather(
        outcome_sequence(11), outcome_sequence(11), outcome_sequence(12)
    )
    assert first == second
    assert first != other
    assert {"500:", "429:", "200:INTERNAL_SERVER_ERROR", "200:NOT_FOUND"} <= set(first)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_proxy_5xx(status: int) -> None:
    faults = {f"http_{status}_rate": 1.0}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        got, headers, _ = await post(session, sb)
        assert got == status
        assert headers["Content-Type"].startswith("text/html")
        assert sb.ledger.call_counts()["order"] == {f"http_{status}": 1}


async def test_429_retry_after_in_seconds() -> None:
    faults = {"http_429_rate": 1.0, "retry_after_s": 7}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        status, headers, _ = await post(session, sb)
        assert (status, headers["Retry-After"]) == (429, "7")


async def test_429_retry_after_as_http_date() -> None:
    faults = {"http_429_rate": 1.0, "retry_after_s": 30, "retry_after_format": "date"}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        status, headers, _ = await post(session, sb)
        assert status == 429
        when = parsedate_to_datetime(headers["Retry-After"])
        ahead = (when - datetime.now(UTC)).total_seconds()
        assert 25 <= ahead <= 31


async def test_connection_reset_without_response() -> None:
    async with sandbox.running(faults={"reset_rate": 1.0}) as sb, aiohttp.ClientSession() as s:
        with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
            await post(s, sb)
        assert sb.ledger.call_counts()["order"] == {"reset": 1}


async def test_malformed_json_body() -> None:
    async with (
        sandbox.running(faults={"malformed_json_rate": 1.0}) as sb,
        aiohttp.ClientSession() as s,
    ):
        status, headers, body = await post(s, sb)
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)


async def test_mutation_commits_then_holds_past_the_client_timeout() -> None:
    faults = {"hold_rate": 1.0, "hold_s": 2.0, "operations": ["mutation"]}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        order = simple_order(sb.store, policy="ON_OPEN")
        variables = {"input": {"items": unit_ids(order), "invoice_id": "held-1"}}
        timeout = aiohttp.ClientTimeout(total=0.3)
        headers = {"Authorization": f"Bearer {sb.api_key}"}
        payload = {"query": INVOICE_ITEMS_MUTATION, "variables": variables}
        with pytest.raises(TimeoutError):
            async with session.post(
                sb.graphql_url, json=payload, headers=headers, timeout=timeout
            ) as response:
                await response.read()
        assert "held-1" in sb.store.invoices, "the work was committed before the hold"
        assert sb.ledger.call_counts()["mutation"] == {"held_ok": 1}
        status, _, _ = await post(session, sb)  # queries are out of scope: answered at once
        assert status == 200


async def test_rate_limited_from_the_token_bucket() -> None:
    faults = {"rate_limit_rps": 0.5, "rate_limit_burst": 2}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        codes = [code((await post(session, sb))[2]) for _ in range(3)]
        assert codes == ["NOT_FOUND", "NOT_FOUND", "RATE_LIMITED"]
        sb.http_status_mode = True
        status, headers, body = await post(session, sb)
        assert (status, code(body)) == (429, "RATE_LIMITED")
        assert headers["Retry-After"] == "1"


async def test_internal_server_error_always_200_or_real_500() -> None:
    async with (
        sandbox.running(faults={"internal_error_rate": 1.0}) as sb,
        aiohttp.ClientSession() as s,
    ):
        status, _, body = await post(s, sb)
        assert (status, code(body)) == (200, "INTERNAL_SERVER_ERROR")
        assert json.loads(body)["data"] is None
        sb.http_status_mode = True
        status, _, body = await post(s, sb)
        assert (status, code(body)) == (500, "INTERNAL_SERVER_ERROR")


async def test_latency_is_added() -> None:
    async with sandbox.running(faults={"latency_ms": 150}) as sb, aiohttp.ClientSession() as s:
        started = time.monotonic()
        await post(s, sb)
        assert time.monotonic() - started >= 0.15


async def test_faults_scoped_to_operations() -> None:
    faults = {"http_503_rate": 1.0, "operations": ["invoice"]}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        assert (await post(session, sb))[0] == 200
        invoice_query = "query($id: String!) { invoice(id: $id) { id } }"
        assert (await post(session, sb, invoice_query))[0] == 503
