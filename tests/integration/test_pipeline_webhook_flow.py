"""End to end through the webhook door: the sandbox sends only signed Afosto webhooks (no
fulfilment events), the service turns them into triggers, and orders still get invoiced."""

from __future__ import annotations

import socket

import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from tests.conftest import sandbox_options
from tests.integration.pipeline_support import (
    assert_exactly_once,
    capture,
    eventually,
    service,
    settled,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup", "no_crash_env")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_webhooks_alone_drive_invoicing(
    service_env: dict[str, str], amqp: AbstractRobustConnection, prefix: str
) -> None:
    port, secret = _free_port(), "whsec-test-0123456789"
    options = sandbox_options(webhook_url=f"http://127.0.0.1:{port}/webhooks/afosto")
    async with sandbox.running(**options, webhook_secret=secret) as sb:
        env = {
            **service_env,
            "INVOICER_HTTP_PORT": str(port),
            "INVOICER_WEBHOOK_SECRETS": f"old-secret-xyz,{secret}",
            "INVOICER_AFOSTO_URL": sb.graphql_url,
            "INVOICER_AFOSTO_API_KEY": sb.api_key,
        }
        async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out, service(env):
            for _ in range(3):
                order = await sb.simulator.create_order()
                await sb.simulator.ship(order.id)
            await eventually(lambda: settled(sb, out), within=30, what="invoices from webhooks")
        assert sb.simulator.webhooks is not None
        statuses = {status for _, status in sb.simulator.webhooks.deliveries}
        assert statuses <= {200, 202, 204}, statuses
        assert_exactly_once(sb, out)
        assert len(sb.ledger.invoices) == 3
