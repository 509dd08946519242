"""Readiness, the watchdog and the Afosto circuit inside the whole service (consumer.app) with
the real broker and the sandbox over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from consumer.app import App
from tests.integration.pipeline_support import capture, eventually, service

pytestmark = pytest.mark.integration


async def _readyz(app: App) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{app.http_port}/readyz") as response,
    ):
        return response.status, await response.json()


async def test_watchdog_restores_a_deleted_triggers_queue_and_events_flow_again(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    prefix: str,
    amqp: AbstractRobustConnection,
    cleanup: list[str],
) -> None:
    triggers = f"{prefix}.triggers"
    async with capture(amqp, f"{prefix}.out", f"{prefix}.cap") as out, service(full_env) as app:
        status, body = await _readyz(app)
        assert status == 200, body
        assert set(body["checks"]["consumers"]["queues"]) == {
            triggers,
            f"{prefix}.intents",
            f"{prefix}.pdf",
        }

        # Deleting a quorum queue makes the broker cancel our consumer (basic.cancel).
        async with amqp.channel() as channel:
            await channel.queue_delete(triggers)
        status, body = await _readyz(app)
        assert status == 503
        assert body["failed"] == ["consumers"]
        assert body["checks"]["consumers"]["missing"] == [triggers]

        for _ in range(600):  # the watchdog asks every 5 s and repairs on the second miss
            status, body = await _readyz(app)
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200, body
        # aio-pika's robust channel usually re-consumes by itself after a basic.cancel; the
        # watchdog re-subscribes when it has not within two checks. Either way: ready again.
        resubscribed = app.metrics.registry.get_sample_value(
            "invoicer_consumer_resubscribes_total", {"queue": triggers, "outcome": "ok"}
        )
        assert resubscribed in (None, 1.0)

        # Not only registered: the re-declared queue is bound again, and events flow.
        order = await afosto.simulator.create_order()
        await afosto.simulator.ship(order.id)
        await eventually(
            lambda: bool(out.of("invoice.created")), within=20, what="invoice.created after repair"
        )


async def test_unauthorized_pauses_the_service_and_it_resumes_by_itself(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    prefix: str,
    amqp: AbstractRobustConnection,
    cleanup: list[str],
) -> None:
    good_bearer = afosto.bearer
    async with capture(amqp, f"{prefix}.out", f"{prefix}.cap") as out, service(full_env) as app:
        afosto.bearer = "Bearer rotated-away"  # the service's key stops working
        orders = [await afosto.simulator.create_order() for _ in range(5)]
        for order in orders:
            await afosto.simulator.ship(order.id)

        await eventually(lambda: app.controller.paused, within=20, what="pause")
        status, body = await _readyz(app)
        assert status == 503
        assert set(body["failed"]) == {"afosto", "consuming"}
        assert body["checks"]["afosto"]["reason"] == "unauthorized"
        assert out.of("invoice.created") == []

        afosto.bearer = good_bearer  # the operator fixed the key
        await eventually(
            lambda: len({m.body["event_id"] for m in out.of("invoice.created")}) == len(orders),
            within=60,
            what="every order invoiced after resuming",
        )
        status, _ = await _readyz(app)
        assert status == 200
        assert not app.controller.paused

    assert afosto.ledger.invoiced_more_than_once() == {}
    sample = app.metrics.registry.get_sample_value
    assert sample("invoicer_pauses_total", {"reason": "unauthorized"}) == 1
    dead = sum(
        sample("invoicer_dead_letters_total", {"queue": f"{prefix}.{q}", "reason": r}) or 0
        for q in ("triggers", "intents", "pdf")
        for r in ("retries_exhausted", "api_rejected", "order_not_found")
    )
    assert dead == 0  # nothing burnt its retries while Afosto refused us
