"""Bad input: the AMQP poison set (with the dead-letter reason each must get) and the webhook
attack table (with the status each must get), plus signed valid webhooks."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from consumer.http.signature import sign

SIG = "X-Afosto-Hmac-Sha256"
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Poison:
    kind: str
    routing_key: str
    body: bytes
    content_type: str
    reason: str  # invoicer-dead-reason expected in the dead-letter queue


def poison(kind: str, message_id: str) -> Poison:
    """One poison message of `kind` (see tiers.POISON_KINDS)."""
    good = {"event_type": "order.shipped", "order_id": "o-poison", "event_id": message_id}
    dumps = json.dumps
    table = {
        "non_json": (
            "order.shipped",
            b'{"event_type": "order.shipped", "order_id": ',
            JSON_TYPE,
            "invalid_json",
        ),
        "json_not_object": (
            "order.shipped",
            b'["order.shipped", "o-1"]',
            JSON_TYPE,
            "schema_violation",
        ),
        "missing_field": (
            "order.shipped",
            dumps({"event_type": "order.shipped", "event_id": message_id}).encode(),
            JSON_TYPE,
            "schema_violation",
        ),
        "wrong_type": (
            "order.shipped",
            dumps({**good, "order_id": 12345}).encode(),
            JSON_TYPE,
            "schema_violation",
        ),
        "unknown_event_type": (
            "order.updated",
            dumps({**good, "event_type": "order.deleted"}).encode(),
            JSON_TYPE,
            "unknown_event_type",
        ),
        "too_large": (
            "order.shipped",
            dumps({**good, "pad": "x" * (300 * 1024)}).encode(),
            JSON_TYPE,
            "too_large",
        ),
        "wrong_content_type": ("order.shipped", dumps(good).encode(), "text/plain", "invalid_json"),
        "unknown_order": (
            "order.shipped",
            dumps({**good, "order_id": f"no-such-order-{message_id}"}).encode(),
            JSON_TYPE,
            "order_not_found",
        ),
    }
    key, body, content_type, reason = table[kind]
    return Poison(kind, key, body, content_type, reason)


def envelope(event: str, message_id: str, order_id: str, data: Mapping[str, object]) -> bytes:
    delivery = event in ("IN_TRANSIT", "DELIVERED")
    body = {
        "event": event,
        "data": data,
        "entity_id": str(data.get("id", order_id)) if delivery else order_id,
        "entity_type": "delivery" if delivery else "order",
        "message_id": message_id,
        "triggered_at": int(time.time() * 1000),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signed(body: bytes, secret: str, content_type: str = JSON_TYPE) -> dict[str, str]:
    return {"Content-Type": content_type, SIG: sign(body, secret.encode())}


@dataclass(frozen=True)
class Attack:
    name: str
    body: bytes
    headers: dict[str, str]
    status: int


def attacks(secret: str) -> list[Attack]:
    """The webhook attack table: every request must get exactly its status, nothing enqueued."""
    good = envelope(
        "IN_TRANSIT", "msg_chaos_attack", "o-attack", {"id": "del_1", "order_id": "o-attack"}
    )
    other = envelope(
        "IN_TRANSIT", "msg_chaos_other", "o-attack", {"id": "del_2", "order_id": "o-attack"}
    )
    sig = sign(good, secret.encode())
    flipped = ("1" if sig[0] != "1" else "2") + sig[1:]
    no_msg_id = json.dumps(
        {
            "event": "IN_TRANSIT",
            "data": {},
            "entity_id": "d",
            "entity_type": "delivery",
            "triggered_at": 1,
        }
    ).encode()
    bad_time = good.replace(b'"triggered_at":', b'"triggered_at":-5,"x":')
    no_order = envelope("IN_TRANSIT", "msg_chaos_no_order", "", {"id": "del_3"})
    j = {"Content-Type": JSON_TYPE}
    rows = [
        ("missing signature", good, j, 401),
        ("empty signature", good, {**j, SIG: ""}, 401),
        ("flipped bit", good, {**j, SIG: flipped}, 401),
        ("wrong secret", good, {**j, SIG: sign(good, b"not-our-secret")}, 401),
        ("signature of another body", good, {**j, SIG: sign(other, secret.encode())}, 401),
        ("non-hex signature", good, {**j, SIG: "zz" * 32}, 401),
        ("truncated signature", good, {**j, SIG: sig[:63]}, 401),
        ("very long signature", good, {**j, SIG: "a" * 8000}, 401),
        ("header over the field limit", good, {**j, SIG: "a" * 9000}, 400),
        ("wrong content type", good, signed(good, secret, "text/plain"), 415),
        ("non-JSON body", b"event=IN_TRANSIT", signed(b"event=IN_TRANSIT", secret), 400),
        ("non-UTF-8 body", b'{"event":"\xff"}', signed(b'{"event":"\xff"}', secret), 400),
        ("JSON array", b"[1,2]", signed(b"[1,2]", secret), 400),
        ("empty body", b"", signed(b"", secret), 400),
        ("no message_id", no_msg_id, signed(no_msg_id, secret), 400),
        ("negative triggered_at", bad_time, signed(bad_time, secret), 400),
        ("delivery naming no order", no_order, signed(no_order, secret), 400),
        ("over 256 KiB", b'{"p":"' + b"x" * (300 * 1024) + b'"}', j, 413),
    ]
    return [Attack(*row) for row in rows]
