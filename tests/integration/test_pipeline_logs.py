"""The service's own log output (subprocess, JSON): one outcome line per message with the ids
an operator searches for, and never a secret."""

from __future__ import annotations

import json

import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from tests.integration.pipeline_support import ServiceProcess, capture, eventually, settled

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup", "no_crash_env")]


async def test_json_logs_have_outcome_lines_and_no_secrets(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    secret = "whsec-never-log-me-42"
    env = {**full_env, "INVOICER_LOG_FORMAT": "json", "INVOICER_WEBHOOK_SECRETS": secret}
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out:
        proc = ServiceProcess(env)
        await proc.start()
        try:
            order = await afosto.simulator.create_order()
            await afosto.simulator.ship(order.id)
            await eventually(lambda: settled(afosto, out), what="the invoice")
        finally:
            assert await proc.terminate() == 0, proc.log_tail()

    records = [json.loads(line) for line in proc.lines if line.startswith("{")]
    assert len(records) == len(proc.lines), "every log line is one JSON object"
    outcomes = [r for r in records if r["logger"] == "consumer.pipeline"]
    (issued,) = [r for r in outcomes if r["stage"] == "intents"]
    invoice_id = afosto.ledger.invoices[0].id
    assert issued["order_id"] == order.id
    assert issued["invoice_id"] == invoice_id
    assert issued["outcome"] == "acked"
    assert issued["attempt"] == 1
    assert issued["duration_ms"] >= 0
    assert issued["event_id"]
    assert {r["stage"] for r in outcomes} == {"triggers", "intents", "pdf"}
    required = {"stage", "event_id", "order_id", "invoice_id", "attempt", "outcome", "duration_ms"}
    for record in outcomes:
        assert required <= record.keys(), record
        assert record["order_id"] == order.id, record
    text = "\n".join(proc.lines)
    assert afosto.api_key not in text
    assert secret not in text
    assert ":guest@" not in text  # the broker password
