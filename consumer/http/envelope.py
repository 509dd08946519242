"""Afosto's webhook envelope (afosto-api.md §2.2) and how an event becomes a trigger.

The mapping is a table: order events become `order.updated`, delivery events `order.shipped`;
anything else is acknowledged and ignored. The trigger is the inbound event of DESIGN §5.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.inbound import EventType, TriggerEvent

# Upper bound of datetime (year 9999) in ms, so a hostile but signed value cannot overflow.
_MAX_MILLIS: Final = 253_402_300_799_999

EVENT_TRIGGERS: Final[dict[str, EventType]] = {
    "ORDER_OPENED": "order.updated",
    "ORDER_UPDATED": "order.updated",
    "ORDER_CLOSED": "order.updated",
    "IN_TRANSIT": "order.shipped",
    "DELIVERED": "order.shipped",
}


class WebhookEnvelope(BaseModel):
    """The fields every Afosto webhook carries; unknown fields are accepted."""

    model_config = ConfigDict(frozen=True, extra="allow")

    event: str = Field(min_length=1, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)
    entity_id: str = Field(min_length=1, max_length=256)
    entity_type: str = Field(min_length=1, max_length=64)
    message_id: str = Field(min_length=1, max_length=256)
    # Documented as a nullable Int64: a signed event without it is still an event.
    triggered_at: int | None = Field(default=None, ge=0, le=_MAX_MILLIS)

    @field_validator("data", mode="before")
    @classmethod
    def _null_data_is_empty(cls, value: object) -> object:
        return {} if value is None else value


class NoOrderId(ValueError):
    """A mapped event whose payload names no order."""


def _str_id(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def order_id_of(envelope: WebhookEnvelope) -> str:
    """The order an event concerns: data.order_id, data.order.id, then the order entity itself."""
    data = envelope.data
    found = _str_id(data.get("order_id"))
    order = data.get("order")
    if found is None and isinstance(order, dict):
        found = _str_id(order.get("id"))
    if found is None and envelope.entity_type.lower() == "order":
        found = _str_id(data.get("id")) or _str_id(envelope.entity_id)
    if found is None:
        raise NoOrderId(f"{envelope.event} payload names no order id")
    return found


def _item_ids(value: object) -> tuple[str, ...] | None:
    # Informational only (DESIGN §5); a malformed list is dropped, not a reason to refuse.
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    return None


def trigger_for(envelope: WebhookEnvelope) -> TriggerEvent | None:
    """The trigger to enqueue, or None for an event we do not act on."""
    event_type = EVENT_TRIGGERS.get(envelope.event)
    if event_type is None:
        return None
    return TriggerEvent(
        event_type=event_type,
        order_id=order_id_of(envelope),
        event_id=envelope.message_id,
        occurred_at=(
            None
            if envelope.triggered_at is None
            else datetime.fromtimestamp(envelope.triggered_at / 1000, tz=UTC)
        ),
        item_ids=_item_ids(envelope.data.get("item_ids")),
    )
