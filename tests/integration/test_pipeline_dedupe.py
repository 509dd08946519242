"""Duplicates after confirmation cost no Afosto call: a repeated intent for an invoice this
process already announced is acked as a duplicate (no mutation, no second invoice.created)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from handlers.ids import intent_message_id
from schemas.internal import Intent
from tests.integration.pipeline_support import (
    assert_exactly_once,
    capture,
    eventually,
    service,
    settled,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup", "no_crash_env")]


def _mutations(sb: sandbox.Sandbox) -> int:
    return sum(sb.ledger.call_counts().get("mutation", {}).values())


async def test_a_repeated_intent_is_acked_without_calling_afosto(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="consumer.pipeline")
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out, service(full_env):
        order = await afosto.simulator.create_order()
        await afosto.simulator.ship(order.id)
        await eventually(lambda: settled(afosto, out), what="the invoice")
        event = out.of("invoice.created")[0].body
        intent = Intent(
            invoice_id=event["invoice"]["id"],
            order_id=order.id,
            customer_id=event["invoice"]["customer"]["id"],
            item_ids=tuple(sorted(event["item_ids"])),
            correlation_id="replayed-event",
            event_type="order.shipped",
            first_seen=datetime.now(UTC),
        )
        before = _mutations(afosto)
        async with amqp.channel() as channel:
            route = await channel.get_exchange(f"{prefix}.route")
            body = intent.model_dump_json().encode()
            for _ in range(3):
                message = aio_pika.Message(
                    body,
                    message_id=intent_message_id(intent.invoice_id),
                    content_type="application/json",
                )
                await route.publish(message, routing_key=f"{prefix}.intents")

        def duplicates() -> int:
            return sum(
                1
                for r in caplog.records
                if getattr(r, "stage", None) == "intents"
                and getattr(r, "reason", None) == "duplicate"
            )

        await eventually(lambda: duplicates() == 3, what="three duplicates acked")
    assert _mutations(afosto) == before
    assert len(out.of("invoice.created")) == 1
    assert len(out.of("invoice.pdf_ready")) == 1
    assert_exactly_once(afosto, out)
