"""The whole service (consumer.app) fed only by the sandbox's signed webhooks: an order shipped
in Afosto becomes exactly one invoice.created, and a rotated-out secret is refused."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from tests.conftest import sandbox_options
from tests.integration.http_support import envelope, signed_headers
from tests.integration.pipeline_support import capture, eventually, service
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

SECRET = "e2e-current-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_shipped_order_announced_by_webhooks_is_invoiced_once(
    service_env: dict[str, str],
    prefix: str,
    amqp: AbstractRobustConnection,
    cleanup: list[str],
) -> None:
    port = _free_port()
    hook = f"http://127.0.0.1:{port}/webhooks/afosto"
    options: dict[str, Any] = sandbox_options(webhook_url=hook, webhook_secret=SECRET)
    async with sandbox.running(**options) as sb:
        env = {
            **service_env,
            "INVOICER_AFOSTO_URL": sb.graphql_url,
            "INVOICER_AFOSTO_API_KEY": sb.api_key,
            "INVOICER_WEBHOOK_SECRETS": f"previous-secret,{SECRET}",
            "INVOICER_HTTP_PORT": str(port),
        }
        async with (
            capture(amqp, f"{prefix}.out", f"{prefix}.cap") as out,
            service(env) as app,
        ):
            order = await sb.simulator.create_order()
            step = await sb.simulator.ship(order.id)
            assert step.published, "the simulator sent webhooks"

            await eventually(
                lambda: bool(out.of("invoice.created")), within=20, what="invoice.created"
            )
            await eventually(
                lambda: bool(out.of("invoice.pdf_ready")), within=20, what="invoice.pdf_ready"
            )
            webhooks = sb.simulator.webhooks
            assert webhooks is not None
            assert {status for _, status in webhooks.deliveries} <= {200, 202}

            metrics = app.metrics.registry.get_sample_value
            assert (
                metrics("invoicer_webhook_triggers_total", {"event_type": "order.shipped"}) or 0
            ) >= 1
            assert (
                metrics("invoicer_webhook_triggers_total", {"event_type": "order.updated"}) or 0
            ) >= 1

            # The same order announced again (a replay) changes nothing.
            await sb.simulator.republish(step.published[0])
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/readyz") as response,
            ):
                assert response.status == 200

        # Two webhooks (IN_TRANSIT, ORDER_UPDATED) race for one order: one invoice in Afosto,
        # and any repeated invoice.created carries the same event_id (at-least-once, DESIGN §3).
        created = {m.body["event_id"]: m.body for m in out.of("invoice.created")}
        assert len(created) == 1
        assert next(iter(created.values()))["order_ids"] == [order.id]
        assert len(sb.ledger.invoices) == 1
        assert sb.ledger.invoiced_more_than_once() == {}
        assert sb.ledger.never_invoiced() == {}


async def test_webhook_signed_with_an_unknown_secret_is_refused_by_the_service(
    service_env: dict[str, str], cleanup: list[str]
) -> None:
    port = _free_port()
    hook = f"http://127.0.0.1:{port}/webhooks/afosto"
    async with sandbox.running(**sandbox_options(webhook_url=hook, webhook_secret="stale")) as sb:
        env = {
            **service_env,
            "INVOICER_AFOSTO_URL": sb.graphql_url,
            "INVOICER_AFOSTO_API_KEY": sb.api_key,
            "INVOICER_WEBHOOK_SECRETS": SECRET,
            "INVOICER_HTTP_PORT": str(port),
        }
        async with service(env) as app:
            await sb.simulator.create_order()
            webhooks = sb.simulator.webhooks
            assert webhooks is not None
            assert [status for _, status in webhooks.deliveries] == [401]
            refused = app.metrics.registry.get_sample_value(
                "invoicer_webhook_requests_total", {"status": "401"}
            )
            assert refused == webhooks.attempts  # the sender retried; each try was refused


async def test_broker_outage_gives_503_and_the_retried_webhook_is_invoiced_after(
    service_env: dict[str, str],
    prefix: str,
    amqp: AbstractRobustConnection,
    cleanup: list[str],
) -> None:
    proxy = TcpProxy()
    await proxy.start()
    port = _free_port()
    try:
        async with sandbox.running(**sandbox_options()) as sb:
            env = {
                **service_env,
                "INVOICER_AMQP_URL": proxy.url,  # the service reaches the broker through the proxy
                "INVOICER_AFOSTO_URL": sb.graphql_url,
                "INVOICER_AFOSTO_API_KEY": sb.api_key,
                "INVOICER_WEBHOOK_SECRETS": SECRET,
                "INVOICER_HTTP_PORT": str(port),
            }
            async with (
                capture(amqp, f"{prefix}.out", f"{prefix}.cap") as out,
                service(env),
                aiohttp.ClientSession() as session,
            ):
                order = sb.store.create_order(
                    sb.simulator.catalog.customer(), sb.simulator.catalog.lines()
                )
                sb.store.ship(order.id)
                body = envelope("IN_TRANSIT", order_id=order.id)
                url = f"http://127.0.0.1:{port}/webhooks/afosto"
                headers = signed_headers(body, SECRET)

                await proxy.cut()
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 503
                    assert "Retry-After" in response.headers
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    assert response.status == 503

                await proxy.restore()
                status = 503
                for _ in range(300):  # Afosto's retries, compressed
                    async with session.post(url, data=body, headers=headers) as response:
                        status = response.status
                    if status == 200:
                        break
                    await asyncio.sleep(0.1)
                assert status == 200
                await eventually(
                    lambda: bool(out.of("invoice.created")), within=30, what="invoice.created"
                )
    finally:
        await proxy.cut()
