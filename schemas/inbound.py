"""The inbound trigger (DESIGN §5) and its re-check form for early events (DESIGN §3)."""

from __future__ import annotations

from typing import Final, Literal, get_args

from pydantic import AwareDatetime, Field

from schemas.parsing import InvalidMessage, decode_object, validate
from schemas.types import Inbound, Internal

EventType = Literal["order.shipped", "order.returned", "order.updated"]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)


class RecheckState(Internal):
    """Set by plan when Afosto does not show an event's effect yet; bounded by first_seen."""

    first_seen: AwareDatetime
    check: int = Field(ge=1)
    # message id of the intent sent beside this re-check: past the deadline, finding the same
    # intent again ends the re-checks (it is on its way already), a new one earns another look
    last_intent: str | None = None


class TriggerEvent(Inbound):
    """An order event: only a trigger, Afosto's order.actions decides what is invoiceable.

    `invoicer_recheck` is reserved: plan sets it on the copy it sends back to the triggers
    queue to look again later; extra fields of the original event travel along unchanged.
    """

    event_type: EventType
    order_id: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    occurred_at: AwareDatetime | None = None
    item_ids: tuple[str, ...] | None = None
    invoicer_recheck: RecheckState | None = None


def parse_trigger(body: bytes, content_type: str | None, message_id: str | None) -> TriggerEvent:
    """A trigger from the wire; `event_id` falls back to the AMQP message_id."""
    data = decode_object(body, content_type)
    event_type = data.get("event_type")
    if isinstance(event_type, str) and event_type not in EVENT_TYPES:
        raise InvalidMessage("unknown_event_type", f"event_type {event_type[:80]!r} is not handled")
    if data.get("event_id") is None and message_id:
        data["event_id"] = message_id
    return validate(TriggerEvent, data)
