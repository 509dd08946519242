"""The envelope model and the event → trigger table (afosto-api.md §2.2–2.3, DESIGN §5)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from consumer.http.envelope import NoOrderId, WebhookEnvelope, order_id_of, trigger_for


def _raw(event: str, data: Any) -> dict[str, Any]:
    return {
        "event": event,
        "data": data,
        "entity_id": "ent_1",
        "entity_type": "order" if event.startswith("ORDER_") else "delivery",
        "message_id": "msg_1",
        "triggered_at": 1714000000000,
    }


def _envelope(event: str, data: dict[str, Any], **fields: Any) -> WebhookEnvelope:
    return WebhookEnvelope.model_validate({**_raw(event, data), **fields})


@pytest.mark.parametrize(
    ("event", "event_type"),
    [
        ("ORDER_OPENED", "order.updated"),
        ("ORDER_UPDATED", "order.updated"),
        ("ORDER_CLOSED", "order.updated"),
        ("IN_TRANSIT", "order.shipped"),
        ("DELIVERED", "order.shipped"),
    ],
)
def test_mapped_events(event: str, event_type: str) -> None:
    trigger = trigger_for(_envelope(event, {"order_id": "ord_9"}))

    assert trigger is not None
    assert trigger.event_type == event_type
    assert trigger.order_id == "ord_9"
    assert trigger.event_id == "msg_1"
    assert trigger.occurred_at == datetime(2024, 4, 24, 23, 6, 40, tzinfo=UTC)


@pytest.mark.parametrize(
    "event", ["PRODUCT_UPDATED", "order_updated", "SHIPPED", "INVOICE_CREATED"]
)
def test_other_events_are_not_triggers(event: str) -> None:
    assert trigger_for(_envelope(event, {"order_id": "ord_9"})) is None


@pytest.mark.parametrize(
    ("event", "data", "entity_id", "expected"),
    [
        ("IN_TRANSIT", {"order_id": "ord_a", "order": {"id": "ord_b"}}, "del_1", "ord_a"),
        ("IN_TRANSIT", {"order": {"id": "ord_b"}}, "del_1", "ord_b"),
        ("ORDER_UPDATED", {"id": "ord_c"}, "ord_d", "ord_c"),
        ("ORDER_UPDATED", {"number": 1042}, "ord_d", "ord_d"),
        ("ORDER_UPDATED", {"order_id": " ", "id": 17}, "ord_e", "ord_e"),
    ],
)
def test_order_id_precedence(
    event: str, data: dict[str, Any], entity_id: str, expected: str
) -> None:
    assert order_id_of(_envelope(event, data, entity_id=entity_id)) == expected


def test_delivery_event_never_takes_the_delivery_id_for_an_order() -> None:
    with pytest.raises(NoOrderId):
        order_id_of(_envelope("DELIVERED", {"id": "del_1"}, entity_id="del_1"))


def test_unknown_envelope_fields_are_accepted() -> None:
    assert _envelope("ORDER_OPENED", {}, tenant="t1").model_extra == {"tenant": "t1"}


@pytest.mark.parametrize(
    "override",
    [
        {"message_id": ""},
        {"message_id": None},
        {"event": ""},
        {"triggered_at": -1},
        {"triggered_at": 10**20},
        {"triggered_at": "soon"},
        {"data": ["not", "an", "object"]},
        {"entity_id": 5},
    ],
)
def test_envelope_violations_are_rejected(override: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WebhookEnvelope.model_validate({**_raw("ORDER_OPENED", {}), **override})


def test_delivery_item_ids_travel_along_when_well_formed() -> None:
    good = trigger_for(_envelope("IN_TRANSIT", {"order_id": "o", "item_ids": ["i1", "i2"]}))
    odd = trigger_for(_envelope("IN_TRANSIT", {"order_id": "o", "item_ids": ["i1", 2]}))

    assert good is not None
    assert good.item_ids == ("i1", "i2")
    assert odd is not None
    assert odd.item_ids is None


def test_missing_timestamp_or_null_data_still_make_a_trigger() -> None:
    raw = {**_raw("ORDER_UPDATED", {}), "data": None}
    del raw["triggered_at"]
    trigger = trigger_for(WebhookEnvelope.model_validate(raw))
    assert trigger is not None
    assert trigger.occurred_at is None
    assert trigger.order_id == raw["entity_id"]
