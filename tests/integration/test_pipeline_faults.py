"""Faults: a hostile Afosto (errors, timeouts after commit, resets, rate limits) and poison
messages next to good traffic. Real broker, sandbox over HTTP, service in-process."""

from __future__ import annotations

import json
from collections import Counter

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from consumer.amqp.publisher import ATTEMPT_HEADER, DEAD_REASON_HEADER, SOURCE_QUEUE_HEADER
from tests.conftest import sandbox_options
from tests.integration.pipeline_support import (
    assert_exactly_once,
    capture,
    collect_dead,
    dead_letters,
    eventually,
    service,
    settled,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup", "no_crash_env")]

FAULT_MIX = {
    "latency_ms": 5.0,
    "latency_jitter_ms": 10.0,
    "http_500_rate": 0.05,
    "http_503_rate": 0.05,
    "http_429_rate": 0.05,
    "internal_error_rate": 0.05,
    "malformed_json_rate": 0.05,
    "reset_rate": 0.05,
    "hold_rate": 0.1,  # the mutation commits, then the answer comes too late
    "hold_s": 1.5,
    "retry_after_s": 1,
}


async def test_fault_mix_still_invoices_everything_once(
    service_env: dict[str, str],
    broker_url: str,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    options = sandbox_options(
        amqp_url=broker_url, exchange=f"{prefix}.in", seed=3, faults=dict(FAULT_MIX)
    )
    async with sandbox.running(**options) as sb:
        env = {
            **service_env,
            "INVOICER_AFOSTO_URL": sb.graphql_url,
            "INVOICER_AFOSTO_API_KEY": sb.api_key,
            "INVOICER_AFOSTO_TIMEOUT": "1s",
            "INVOICER_AFOSTO_RETRY_BUDGET": "2s",
            "INVOICER_MAX_ATTEMPTS": "20",
            "INVOICER_PDF_DEADLINE": "60s",
        }
        async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out, service(env):
            for _ in range(15):
                order = await sb.simulator.create_order()
                await sb.simulator.ship(order.id)
            await eventually(lambda: settled(sb, out), within=90, what="every order invoiced")
        calls = sb.ledger.call_counts()
        faults = sum(n for op in calls.values() for kind, n in op.items() if kind != "ok")
        assert faults > 0, calls  # the mix really happened
        assert_exactly_once(sb, out)
        assert len(sb.ledger.invoices) == 15
        assert await dead_letters(amqp, f"{prefix}.dead") == []


async def _publish(
    amqp: AbstractRobustConnection, exchange: str, key: str, body: bytes, message_id: str
) -> None:
    async with amqp.channel() as channel:
        ex = await channel.get_exchange(exchange)
        message = aio_pika.Message(body, message_id=message_id, content_type="application/json")
        await ex.publish(message, routing_key=key)


async def test_each_kind_of_poison_is_dead_lettered_once_while_good_messages_flow(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    poison = {
        "p-json": ("order.shipped", b'{"event_type": "order.shipped", "order_id": '),
        "p-schema": ("order.shipped", json.dumps({"event_type": "order.shipped"}).encode()),
        "p-type": (
            "order.updated",
            json.dumps({"event_type": "order.deleted", "order_id": "o-1"}).encode(),
        ),
        "p-large": ("order.shipped", b'{"pad": "' + b"x" * (300 * 1024) + b'"}'),
        "p-order": (
            "order.shipped",
            json.dumps({"event_type": "order.shipped", "order_id": "no-such-order"}).encode(),
        ),
    }
    expected = {
        "p-json": "invalid_json",
        "p-schema": "schema_violation",
        "p-type": "unknown_event_type",
        "p-large": "too_large",
        "p-order": "order_not_found",
    }
    async with (
        capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out,
        service(full_env) as app,
    ):
        orders = [await afosto.simulator.create_order() for _ in range(4)]
        for i, (message_id, (key, body)) in enumerate(poison.items()):
            await _publish(amqp, f"{prefix}.in", key, body, message_id)
            await afosto.simulator.ship(orders[i % len(orders)].id)
        await eventually(lambda: settled(afosto, out), within=30, what="good orders invoiced")
        dead = await collect_dead(amqp, f"{prefix}.dead", len(poison), within=20)
        dead += await dead_letters(amqp, f"{prefix}.dead")  # nothing more may come
        rendered = app.metrics.render().decode()

    reasons = {d.message_id: d.headers[DEAD_REASON_HEADER] for d in dead}
    assert reasons == expected
    assert Counter(d.message_id for d in dead) == Counter(poison.keys())  # one copy each
    for d in dead:
        assert d.headers[SOURCE_QUEUE_HEADER] == f"{prefix}.triggers"
        if d.message_id != "p-order":  # invalid messages: exactly one delivery
            assert d.headers.get(ATTEMPT_HEADER, 1) == 1
    assert afosto.ledger.invoiced_more_than_once() == {}
    # Each poison counted once under its reason in invoicer_dead_letters_total.
    counted = {
        line.split('reason="')[1].split('"')[0]: line.rsplit(" ", 1)[1]
        for line in rendered.splitlines()
        if line.startswith("invoicer_dead_letters_total{")
    }
    assert counted == dict.fromkeys(expected.values(), "1.0")
