"""Happy paths through the real broker and the sandbox over HTTP (service in-process)."""

from __future__ import annotations

import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from tests.integration.pipeline_support import capture, eventually, service

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup", "no_crash_env")]


async def test_shipped_order_gets_one_invoice_then_its_pdf(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    async with (
        capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out,
        service(full_env) as app,
    ):
        order = await afosto.simulator.create_order()
        await afosto.simulator.ship(order.id)
        await eventually(lambda: len(out.of("invoice.pdf_ready")) == 1, what="invoice.pdf_ready")
        assert app.http_port

    created = out.of("invoice.created")
    assert len(created) == 1
    (invoice,) = afosto.ledger.invoices
    event = created[0].body
    assert event["invoice"]["id"] == invoice.id
    assert event["invoice"]["total"] == invoice.total
    assert event["invoice"]["kind"] == "invoice"
    assert sorted(event["item_ids"]) == sorted(invoice.item_ids)
    assert created[0].message_id == event["event_id"]
    ready = out.of("invoice.pdf_ready")[0].body
    assert ready["invoice_id"] == invoice.id
    assert ready["pdf_url"].startswith(afosto.base_url)
    assert out.messages.index(created[0]) < out.messages.index(out.of("invoice.pdf_ready")[0])
    assert afosto.ledger.invoiced_more_than_once() == {}
