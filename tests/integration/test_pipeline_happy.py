"""Happy paths through the real broker and the sandbox over HTTP (service in-process)."""

from __future__ import annotations

import logging

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
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="consumer.pipeline")
    async with (
        capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out,
        service(full_env) as app,
    ):
        order = await afosto.simulator.create_order()
        shipped = await afosto.simulator.ship(order.id)
        await eventually(lambda: len(out.of("invoice.pdf_ready")) == 1, what="invoice.pdf_ready")
        assert app.http_port
        metrics = app.metrics.render().decode()

    # One outcome line per message, carrying the ids an operator searches for.
    lines = [r for r in caplog.records if r.name == "consumer.pipeline"]
    stages = [getattr(r, "stage", None) for r in lines]
    assert stages.count("triggers") >= 1
    assert stages.count("intents") == 1
    assert stages.count("pdf") >= 1
    (issued,) = [r for r in lines if getattr(r, "stage", None) == "intents"]
    assert getattr(issued, "order_id", None) == order.id
    assert getattr(issued, "invoice_id", None) == afosto.ledger.invoices[0].id
    assert getattr(issued, "outcome", None) == "acked"
    assert getattr(issued, "attempt", None) == 1
    assert isinstance(getattr(issued, "duration_ms", None), float)
    assert f'invoicer_messages_total{{outcome="acked",queue="{prefix}.intents"}} 1.0' in metrics
    assert 'invoicer_invoices_created_total{kind="invoice"} 1.0' in metrics

    created = out.of("invoice.created")
    assert len(created) == 1
    (invoice,) = afosto.ledger.invoices
    event = created[0].body
    assert event["invoice"]["id"] == invoice.id
    assert event["invoice"]["total"] == invoice.total
    assert event["invoice"]["kind"] == "invoice"
    assert sorted(event["item_ids"]) == sorted(invoice.item_ids)
    assert created[0].message_id == event["event_id"]
    trigger_id = shipped.published[0]  # the order.shipped event's id
    for captured, kind in (
        (created[0], "invoice.created"),
        (out.of("invoice.pdf_ready")[0], "invoice.pdf_ready"),
    ):
        assert captured.type == kind
        assert captured.correlation_id == trigger_id == captured.body["correlation_id"]
        assert captured.message_id == captured.body["event_id"]
        assert captured.content_type == "application/json"
        assert captured.persistent
    ready = out.of("invoice.pdf_ready")[0].body
    assert ready["invoice_id"] == invoice.id
    assert ready["pdf_url"].startswith(afosto.base_url)
    assert out.messages.index(created[0]) < out.messages.index(out.of("invoice.pdf_ready")[0])
    assert afosto.ledger.invoiced_more_than_once() == {}
