"""Business scenarios through the real broker and the sandbox over HTTP (service in-process):
partial shipments, returns as credit invoices, duplicate and replayed events, both
invoice_id modes of the sandbox. The sandbox ledger is the judge of "exactly once"."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from tests.conftest import sandbox_options
from tests.integration.pipeline_support import (
    Capture,
    assert_exactly_once,
    capture,
    eventually,
    service,
    settled,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup", "no_crash_env")]


def _order_queries(sb: sandbox.Sandbox) -> int:
    return sb.ledger.call_counts().get("order", {}).get("ok", 0)


@asynccontextmanager
async def pipeline(
    env: dict[str, str], amqp: AbstractRobustConnection, prefix: str
) -> AsyncIterator[Capture]:
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out, service(env):
        yield out


async def test_partial_shipments_make_two_invoices(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    async with pipeline(full_env, amqp, prefix) as out:
        order = await afosto.simulator.create_order()
        units = [u.id for line in order.lines for u in line.units]
        while len(units) < 2:  # make sure a split is possible
            order = await afosto.simulator.create_order()
            units = [u.id for line in order.lines for u in line.units]
        first = await afosto.simulator.ship(order.id, units[: len(units) // 2])
        await eventually(lambda: len(out.of("invoice.pdf_ready")) == 1, what="first invoice")
        second = await afosto.simulator.ship(order.id)
        await eventually(lambda: len(out.of("invoice.pdf_ready")) == 2, what="second invoice")

    created = out.of("invoice.created")
    assert [sorted(m.body["item_ids"]) for m in created] == [
        sorted(first.item_ids),
        sorted(second.item_ids),
    ]
    assert {m.body["invoice"]["kind"] for m in created} == {"invoice"}
    assert_exactly_once(afosto, out)


async def test_return_after_invoicing_makes_a_credit_invoice(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    async with pipeline(full_env, amqp, prefix) as out:
        order = await afosto.simulator.create_order()
        await afosto.simulator.ship(order.id)
        await eventually(lambda: len(out.of("invoice.created")) == 1, what="the invoice")
        returned = await afosto.simulator.return_items(order.id)
        # The return is announced before Afosto approved it: the service must wait for it.
        await afosto.simulator.approve(order.id)
        await eventually(lambda: len(out.of("invoice.pdf_ready")) == 2, what="the credit PDF")

    invoice, credit = (m.body["invoice"] for m in out.of("invoice.created"))
    assert credit["kind"] == "credit"
    assert credit["total"] == -invoice["total"]
    assert credit["total"] < 0
    assert credit["total_ex_vat"] < 0
    assert all(line["total"] < 0 for line in credit["lines"])
    assert len(returned.item_ids) == len(out.of("invoice.created")[1].body["item_ids"])
    assert_exactly_once(afosto, out)


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
async def test_duplicates_and_replays_invoice_each_item_once(
    lenient: bool,
    service_env: dict[str, str],
    broker_url: str,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    """About 20 % of events delivered twice or more, plus a full replay of every event."""
    rng = random.Random(11)
    options = sandbox_options(amqp_url=broker_url, exchange=f"{prefix}.in", lenient=lenient)
    async with sandbox.running(**options) as sb:
        env = {
            **service_env,
            "INVOICER_AFOSTO_URL": sb.graphql_url,
            "INVOICER_AFOSTO_API_KEY": sb.api_key,
        }
        async with pipeline(env, amqp, prefix) as out:
            sent: list[str] = []
            for _ in range(12):
                order = await sb.simulator.create_order()
                step = await sb.simulator.ship(order.id, fraction=0.5)
                sent += [p for p in step.published if p in sb.simulator.published]
                step = await sb.simulator.ship(order.id)
                sent += [p for p in step.published if p in sb.simulator.published]
            amqp_events = [m for m in sent if sb.simulator.published[m].channel == "amqp"]
            duplicated = 0
            for message_id in amqp_events:
                if rng.random() < 0.2:
                    duplicated += await sb.simulator.republish(message_id, copies=rng.randint(1, 3))
            assert duplicated >= 3
            await eventually(lambda: settled(sb, out), within=40, what="every item invoiced")
            before = _order_queries(sb)
            for message_id in amqp_events:  # a late replay of the whole stream
                await sb.simulator.republish(message_id)
            await eventually(
                lambda: _order_queries(sb) >= before + len(amqp_events),
                within=30,
                what="the replay to be planned",
            )
            await eventually(lambda: settled(sb, out), within=20, what="a quiet pipeline")
        assert_exactly_once(sb, out)
        assert len(sb.ledger.invoices) >= 12
