"""The simulator announces steps on a real RabbitMQ exchange and as signed webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import uuid4

import aio_pika
import aiohttp
from aiohttp import web

import sandbox
from sandbox.model import Contact, Customer, Organisation
from sandbox.publish import USER_AGENT
from sandbox.store import LineSpec

AMQP_URL = os.environ.get("INVOICER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SECRET = "wh-s€cret"


@dataclass
class Received:
    """Webhook deliveries a tiny test server got; `fail_first` answers 500 that many times."""

    fail_first: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if self.fail_first:
            self.fail_first -= 1
            return web.Response(status=500)
        return web.Response(text="ok")


@asynccontextmanager
async def webhook_receiver(received: Received) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/webhooks/afosto", received.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/afosto"
    finally:
        await runner.cleanup()


async def test_events_reach_the_exchange_and_duplicates_are_exact() -> None:
    name = f"t{uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(AMQP_URL)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            f"{name}.fulfilment", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(f"{name}.triggers", exclusive=True)
        await queue.bind(exchange, "order.*")
        async with sandbox.running(amqp_url=AMQP_URL, exchange=exchange.name, seed=1) as sb:
            order = await sb.simulator.create_order()
            shipped = await sb.simulator.ship(order.id)
            sb.store.invoice_items(shipped.item_ids)
            returned = await sb.simulator.return_items(order.id, shipped.item_ids[:1])
            await sb.simulator.republish(shipped.published[0], copies=2)
        messages = []
        for _ in range(4):
            message = await queue.get(timeout=5, fail=True)
            assert message is not None
            await message.ack()
            messages.append(message)
        assert await queue.get(fail=False) is None
        first, second, *duplicates = messages
        body = json.loads(first.body)
        assert first.routing_key == "order.shipped"
        assert first.content_type == "application/json"
        assert first.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert first.message_id == body["event_id"] == shipped.published[0]
        assert body["event_type"] == "order.shipped"
        assert body["order_id"] == order.id
        assert body["item_ids"] == shipped.item_ids
        assert body["occurred_at"].endswith("+00:00")
        returned_body = json.loads(second.body)
        assert second.routing_key == returned_body["event_type"] == "order.returned"
        assert returned_body["item_ids"] == returned.item_ids
        assert [(m.body, m.message_id) for m in duplicates] == [(first.body, first.message_id)] * 2
        await exchange.delete()
    finally:
        await connection.close()


def verify(headers: dict[str, str], body: bytes) -> None:
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Afosto-Hmac-Sha256"] == expected
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    assert headers["X-Afosto-Tenant"] == "tenant-1"
    assert headers["X-Afosto-Endpoint"]
    assert not body.endswith(b"\n")
    compact = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
    assert body == compact.encode()


async def test_webhooks_are_signed_and_shaped_like_afosto() -> None:
    received = Received()
    async with (
        webhook_receiver(received) as url,
        sandbox.running(webhook_url=url, webhook_secret=SECRET, tenant="tenant-1") as sb,
    ):
        customer = Customer(
            Contact(sb.store.new_id(), "zoë@example.nl"), Organisation("org-1", "Café 't Hoekje")
        )
        order = sb.store.create_order(customer, [LineSpec("CB", "Cadeaubon € 25", 2500, 2, 0)])
        shipped = await sb.simulator.ship(order.id)
        await sb.simulator.republish(shipped.published[0])
    assert len(received.requests) == 3
    envelopes = []
    for headers, body in received.requests:
        verify(headers, body)
        envelopes.append(json.loads(body))
    in_transit, updated, again = envelopes
    assert again == in_transit
    assert set(in_transit) == {
        "event",
        "data",
        "entity_id",
        "entity_type",
        "message_id",
        "triggered_at",
    }
    assert (in_transit["event"], in_transit["entity_type"]) == ("IN_TRANSIT", "delivery")
    assert in_transit["data"]["order_id"] == order.id
    assert in_transit["entity_id"] == in_transit["data"]["id"] != order.id
    assert (updated["event"], updated["entity_type"], updated["entity_id"]) == (
        "ORDER_UPDATED",
        "order",
        order.id,
    )
    assert updated["data"]["id"] == order.id
    assert "€" in received.requests[1][1].decode(), "non-ASCII is sent raw, not escaped"
    assert received.requests[2][1] == received.requests[0][1], "a duplicate is byte-identical"
    assert isinstance(updated["triggered_at"], int)


async def test_webhooks_are_retried_after_a_failure() -> None:
    received = Received(fail_first=1)
    async with (
        webhook_receiver(received) as url,
        sandbox.running(webhook_url=url, webhook_secret=SECRET, tenant="tenant-1") as sb,
    ):
        await sb.simulator.create_order()
        assert sb.simulator.webhooks is not None
        assert [status for _, status in sb.simulator.webhooks.deliveries] == [200]
    assert len(received.requests) == 2
    assert received.requests[0][1] == received.requests[1][1]
    assert json.loads(received.requests[0][1])["event"] == "ORDER_OPENED"


async def test_webhook_retries_stop_after_the_attempts_with_the_last_status() -> None:
    received = Received(fail_first=10)
    async with (
        webhook_receiver(received) as url,
        sandbox.running(webhook_url=url, webhook_secret=SECRET) as sb,
    ):
        assert sb.simulator.webhooks is not None
        sb.simulator.webhooks.backoff_s = 0.01
        await sb.simulator.create_order()
        assert [status for _, status in sb.simulator.webhooks.deliveries] == [500]
    assert len(received.requests) == sb.simulator.webhooks.attempts == 3


async def test_no_targets_means_nothing_is_published() -> None:
    async with sandbox.running() as sb:
        order = await sb.simulator.create_order()
        step = await sb.simulator.ship(order.id)
        assert step.published == []
        await asyncio.sleep(0)
        assert sb.simulator.published == {}


async def test_a_failed_announcement_is_reported_and_can_be_resent() -> None:
    name = f"t{uuid4().hex[:8]}.fulfilment"
    async with sandbox.running(amqp_url=AMQP_URL, exchange=name) as sb:
        assert sb.simulator.amqp is not None
        order = await sb.simulator.create_order()
        await sb.simulator.amqp.close()  # the broker connection is gone
        async with aiohttp.ClientSession() as session:
            url = f"{sb.base_url}/_control/orders/{order.id}/ship"
            async with session.post(url) as response:
                assert response.status == 503
                assert "order.shipped" in (await response.json())["error"]
        assert order.status == "OPEN"
        assert [a.action for a in order.actions] == ["INVOICE"], "the shipment itself happened"
        assert [p.name for p in sb.simulator.published.values()] == ["order.shipped"]
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(name)
