"""Small builders for sandbox tests."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from sandbox import LineSpec, Sandbox, Store
from sandbox.model import Contact, Customer, Order, Organisation


def consumer(store: Store, email: str = "jan@example.nl") -> Customer:
    return Customer(Contact(store.new_id(), email, "Jan", "Jansen"))


def business(store: Store, name: str = "Bakkerij B.V.") -> Customer:
    contact = Contact(store.new_id(), "inkoop@bakkerij.nl", "Els", "Bakker")
    return Customer(contact, Organisation(store.new_id(), name), "KL-1")


def simple_order(store: Store, customer: Customer | None = None, **kwargs: Any) -> Order:
    """Two lines: 2 × € 12,99 at 9 % and 1 × € 24,99 at 21 %."""
    lines = [LineSpec("KOF", "Koffie", 1299, 2, 9), LineSpec("MOK", "Mok", 2499, 1, 21)]
    return store.create_order(customer or consumer(store), lines, **kwargs)


def unit_ids(order: Order) -> list[str]:
    return [u.id for line in order.lines for u in line.units]


def invoice_ids_of(order: Order) -> list[str]:
    """Ids under the INVOICE action right now."""
    return next((a.ids for a in order.actions if a.action == "INVOICE"), [])


def action_ids(order: Order, action: str) -> list[str]:
    return next((a.ids for a in order.actions if a.action == action), [])


async def gql(
    session: aiohttp.ClientSession,
    sandbox: Sandbox,
    query: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST one operation with the sandbox's key; returns the decoded body."""
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    payload = {"query": query, "variables": variables or {}}
    async with session.post(sandbox.graphql_url, json=payload, headers=headers) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


@asynccontextmanager
async def sandbox_process(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`python -m sandbox --port 0 <args>` and the base URL it announces; killed at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "--port", "0", *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        base_url = line.strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:"), line
        yield process, base_url
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
