"""POST /webhooks/afosto against a real server and a real broker: good deliveries, key rotation,
replays, and the whole attack table with the exact status and nothing enqueued."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from pydantic import SecretStr

from consumer.http.server import ServerLimits, build_app, serving
from consumer.http.signature import sign
from consumer.http.webhooks import WebhookConfig, WebhookIngress
from consumer.metrics import Metrics
from tests.integration.http_support import (
    BROKER_URL,
    AlwaysReady,
    InputExchange,
    TestTriggerPublisher,
    envelope,
    input_exchange,
    signed_headers,
)

pytestmark = pytest.mark.integration

SECRET_OLD = "old-secret-ϟ-1"
SECRET_NEW = "new-secret-2"


@dataclass
class Stack:
    url: str
    port: int
    session: aiohttp.ClientSession
    metrics: Metrics
    exchange: InputExchange

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        async with self.session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.json()

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with input_exchange() as exchange:
        publisher = TestTriggerPublisher(BROKER_URL, exchange.name)
        await publisher.start()
        metrics = Metrics()
        config = WebhookConfig(secrets=(SecretStr(SECRET_OLD), SecretStr(SECRET_NEW)))
        webhook = WebhookIngress(config, publisher, metrics)
        app = build_app(metrics=metrics, readiness=AlwaysReady(), webhook=webhook)
        try:
            async with (
                serving(app, "127.0.0.1", 0, ServerLimits(header_timeout=2.0)) as port,
                aiohttp.ClientSession() as session,
            ):
                url = f"http://127.0.0.1:{port}/webhooks/afosto"
                yield Stack(url, port, session, metrics, exchange)
        finally:
            await publisher.close()


async def test_delivery_event_becomes_order_shipped_after_confirm(stack: Stack) -> None:
    body = envelope("IN_TRANSIT", message_id="msg_ship_1", order_id="ord_42")

    status, answer = await stack.post(body, signed_headers(body, SECRET_NEW))

    assert (status, answer["status"]) == (200, "enqueued")
    [message] = await stack.exchange.drain()
    assert message.routing_key == "order.shipped"
    assert message.message_id == "msg_ship_1"
    assert message.content_type == "application/json"
    assert json.loads(message.body) == {
        "event_type": "order.shipped",
        "order_id": "ord_42",
        "event_id": "msg_ship_1",
        "occurred_at": "2024-04-24T23:06:40Z",
    }
    assert stack.count("invoicer_webhook_triggers_total", event_type="order.shipped") == 1


@pytest.mark.parametrize("event", ["ORDER_OPENED", "ORDER_UPDATED", "ORDER_CLOSED"])
async def test_order_events_become_order_updated_with_the_order_entity_id(
    stack: Stack, event: str
) -> None:
    body = envelope(event, order_id="ord_7", data={"id": "ord_7", "number": 1042})

    status, _ = await stack.post(body, signed_headers(body, SECRET_OLD))

    assert status == 200
    [message] = await stack.exchange.drain()
    assert message.routing_key == "order.updated"
    assert json.loads(message.body)["order_id"] == "ord_7"


async def test_delivery_event_falls_back_to_the_nested_order(stack: Stack) -> None:
    body = envelope("DELIVERED", data={"id": "del_9", "order": {"id": "ord_nested"}})

    status, _ = await stack.post(body, signed_headers(body, SECRET_NEW))

    assert status == 200
    [message] = await stack.exchange.drain()
    assert json.loads(message.body)["order_id"] == "ord_nested"


@pytest.mark.parametrize("secret", [SECRET_OLD, SECRET_NEW])
async def test_either_rotation_secret_is_accepted(stack: Stack, secret: str) -> None:
    body = envelope()

    status, _ = await stack.post(body, signed_headers(body, secret))

    assert status == 200
    assert len(await stack.exchange.drain()) == 1


async def test_replayed_message_id_is_answered_but_enqueued_once(stack: Stack) -> None:
    body = envelope(message_id="msg_replayed")
    headers = signed_headers(body, SECRET_OLD)

    first = await stack.post(body, headers)
    second = await stack.post(body, headers)

    assert first == (200, {"status": "enqueued"})
    assert second == (200, {"status": "duplicate"})
    assert len(await stack.exchange.drain()) == 1
    assert stack.count("invoicer_webhook_replays_total") == 1


async def test_unknown_event_is_accepted_counted_and_not_enqueued(stack: Stack) -> None:
    body = envelope("PRODUCT_UPDATED", data={"id": "prod_1"})

    status, answer = await stack.post(body, signed_headers(body, SECRET_OLD))

    assert (status, answer["status"]) == (202, "ignored")
    assert await stack.exchange.drain() == []
    assert stack.count("invoicer_webhook_unknown_events_total", event="PRODUCT_UPDATED") == 1


def _flip_one_nibble(signature: str) -> str:
    return ("1" if signature[0] != "1" else "2") + signature[1:]


GOOD = envelope(message_id="msg_attack")
OTHER = envelope(message_id="msg_other")
JSON = {"Content-Type": "application/json"}
SIG = "X-Afosto-Hmac-Sha256"


def _signed(body: bytes, **extra: str) -> dict[str, str]:
    return {**signed_headers(body, SECRET_OLD), **extra}


ATTACKS: list[tuple[str, bytes, dict[str, str], int]] = [
    ("missing signature", GOOD, JSON, 401),
    ("empty signature", GOOD, {**JSON, SIG: ""}, 401),
    ("blank signature", GOOD, {**JSON, SIG: "   "}, 401),
    ("flipped bit", GOOD, {**JSON, SIG: _flip_one_nibble(sign(GOOD, SECRET_OLD.encode()))}, 401),
    ("wrong secret", GOOD, {**JSON, SIG: sign(GOOD, b"not-our-secret")}, 401),
    ("signature of another body", GOOD, {**JSON, SIG: sign(OTHER, SECRET_OLD.encode())}, 401),
    ("non-hex signature", GOOD, {**JSON, SIG: "zz" * 32}, 401),
    ("truncated signature", GOOD, {**JSON, SIG: sign(GOOD, SECRET_OLD.encode())[:63]}, 401),
    ("signature plus a byte", GOOD, {**JSON, SIG: sign(GOOD, SECRET_OLD.encode()) + "0"}, 401),
    ("base64 signature", GOOD, {**JSON, SIG: "q" * 43 + "="}, 401),
    ("very long signature", GOOD, {**JSON, SIG: "a" * 8000}, 401),
    ("non-ascii signature", GOOD, {**JSON, SIG: "é" * 64}, 401),
    ("header over the server's field limit", GOOD, {**JSON, SIG: "a" * 9000}, 400),
    ("wrong content type", GOOD, _signed(GOOD, **{"Content-Type": "text/plain"}), 415),
    (
        "form content type",
        GOOD,
        _signed(GOOD, **{"Content-Type": "application/x-www-form-urlencoded"}),
        415,
    ),
    ("non-JSON body, valid signature", b"event=IN_TRANSIT", _signed(b"event=IN_TRANSIT"), 400),
    ("non-UTF-8 body, valid signature", b'{"event":"\xff"}', _signed(b'{"event":"\xff"}'), 400),
    ("JSON array, valid signature", b"[1,2]", _signed(b"[1,2]"), 400),
    ("empty body, valid signature", b"", _signed(b""), 400),
]
_NO_MSG_ID = json.dumps(
    {
        "event": "IN_TRANSIT",
        "data": {},
        "entity_id": "d",
        "entity_type": "delivery",
        "triggered_at": 1,
    }
).encode()
_BAD_TIME = envelope().replace(b"1714000000000", b"-5")
_NO_ORDER = envelope("IN_TRANSIT", data={"id": "del_1"})
ATTACKS += [
    ("schema violation: no message_id", _NO_MSG_ID, _signed(_NO_MSG_ID), 400),
    ("schema violation: negative triggered_at", _BAD_TIME, _signed(_BAD_TIME), 400),
    ("delivery event naming no order", _NO_ORDER, _signed(_NO_ORDER), 400),
]


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [pytest.param(b, h, s, id=name) for name, b, h, s in ATTACKS],
)
async def test_attack_gets_its_exact_status_and_enqueues_nothing(
    stack: Stack, body: bytes, headers: dict[str, str], expected: int
) -> None:
    async with stack.session.post(stack.url, data=body, headers=headers) as response:
        assert response.status == expected
        await response.read()

    assert await stack.exchange.drain() == []
    if len(headers.get(SIG, "")) <= ServerLimits().max_field_size:  # else aiohttp answered alone
        assert stack.count("invoicer_webhook_requests_total", status=str(expected)) == 1


async def test_webhook_requests_move_the_status_counter_on_metrics(stack: Stack) -> None:
    body = envelope(message_id="msg_metrics_1")
    for secret in (SECRET_OLD, "wrong"):
        await stack.post(body, signed_headers(body, secret))
    async with stack.session.get(f"http://127.0.0.1:{stack.port}/metrics") as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'invoicer_webhook_requests_total{status="200"} 1.0' in text
    assert 'invoicer_webhook_requests_total{status="401"} 1.0' in text
    assert 'invoicer_webhook_triggers_total{event_type="order.shipped"} 1.0' in text
