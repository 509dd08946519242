"""Wire models: poison gets its dead-letter reason, Afosto's loose types are tolerated."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from handlers.errors import Permanent
from handlers.routing import ROUTES
from schemas.afosto import Invoice, Order
from schemas.inbound import parse_trigger
from schemas.internal import parse_intent, parse_pdf_check
from schemas.outbound import InvoiceCreated, PdfReady
from schemas.parsing import MAX_BODY_BYTES, InvalidMessage

GOOD = {"event_type": "order.shipped", "order_id": "o1", "event_id": "e1"}


def body(data: object) -> bytes:
    return json.dumps(data).encode()


def test_a_good_trigger_keeps_unknown_fields() -> None:
    event = parse_trigger(
        body(GOOD | {"item_ids": ["a"], "source": "wms"}), "application/json", None
    )
    assert (event.event_type, event.order_id, event.event_id) == ("order.shipped", "o1", "e1")
    assert event.item_ids == ("a",)
    assert json.loads(event.model_dump_json())["source"] == "wms"


def test_event_id_may_come_from_the_amqp_message_id() -> None:
    data = {k: v for k, v in GOOD.items() if k != "event_id"}
    assert parse_trigger(body(data), None, "msg-7").event_id == "msg-7"
    assert parse_trigger(body(GOOD), None, "msg-7").event_id == "e1"


def test_occurred_at_is_rfc3339_with_a_zone() -> None:
    event = parse_trigger(body(GOOD | {"occurred_at": "2026-01-05T10:00:00+01:00"}), None, None)
    assert event.occurred_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "content_type", "message_id", "reason"),
    [
        (b"x" * (MAX_BODY_BYTES + 1), "application/json", None, "too_large"),
        (body(GOOD | {"pad": "x" * MAX_BODY_BYTES}), "application/json", None, "too_large"),
        (b"{not json", "application/json", None, "invalid_json"),
        (b"", None, None, "invalid_json"),
        (b'{"event_type": "order.shipped", "order_id": "\xff"}', None, None, "invalid_json"),
        (body(GOOD), "text/plain", None, "invalid_json"),
        (body(GOOD), "application/json; charset=latin-1", None, "invalid_json"),
        (b"[1, 2]", "application/json", None, "schema_violation"),
        (b'"order.shipped"', "application/json", None, "schema_violation"),
        (b"null", None, None, "schema_violation"),
        (body({"order_id": "o1", "event_id": "e1"}), None, None, "schema_violation"),
        (body({"event_type": "order.shipped", "event_id": "e1"}), None, None, "schema_violation"),
        (body(GOOD | {"order_id": 42}), None, None, "schema_violation"),
        (body(GOOD | {"order_id": ""}), None, None, "schema_violation"),
        (body(GOOD | {"event_type": 7}), None, None, "schema_violation"),
        (body(GOOD | {"item_ids": "a"}), None, None, "schema_violation"),
        (body(GOOD | {"occurred_at": "yesterday"}), None, None, "schema_violation"),
        (body(GOOD | {"occurred_at": "2026-01-05T10:00:00"}), None, None, "schema_violation"),
        (body({"event_type": "order.shipped", "order_id": "o1"}), None, None, "schema_violation"),
        (body(GOOD | {"event_type": "order.cancelled"}), None, None, "unknown_event_type"),
    ],
)
def test_poison_triggers_get_their_reason(
    raw: bytes, content_type: str | None, message_id: str | None, reason: str
) -> None:
    # As the consume loop sees it: the route's parser turns the schema's refusal into Permanent.
    with pytest.raises(Permanent) as err:
        ROUTES["triggers"].parse(raw, content_type, message_id)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "content_type",
    [None, "", "application/json", "Application/JSON; charset=UTF-8", "application/vnd.x+json"],
)
def test_json_content_types_are_accepted(content_type: str | None) -> None:
    assert parse_trigger(body(GOOD), content_type, None).order_id == "o1"


@pytest.mark.parametrize("parse", [parse_intent, parse_pdf_check])
def test_internal_messages_reject_what_they_cannot_use(parse: object) -> None:
    assert callable(parse)
    with pytest.raises(InvalidMessage) as err:
        parse(body(GOOD), "application/json", None)
    assert err.value.reason == "schema_violation"


def test_a_violation_detail_names_fields_but_not_values() -> None:
    with pytest.raises(InvalidMessage) as err:
        parse_trigger(body(GOOD | {"order_id": ["secret-value"]}), None, None)
    assert "order_id" in err.value.detail
    assert "secret-value" not in err.value.detail


INVOICE = {
    "id": "i",
    "number": "N",
    "currency": "EUR",
    "created_at": "1767603600000",
    "customer": {
        "contact": {"id": "c", "email": "e"},
        "organisation": {"id": "org", "name": "Org"},
    },
    "orders": [{"id": "o1", "number": 7}],
    "lines": [],
    "subtotal": 0,
    "total": -2.0e3,
    "total_ex_vat": "-1653",
    "vat": [{"rate": 21.0, "amount": -347}],
    "reimbursement": {"status": "SOMETHING_NEW", "amount_paid": 0, "amount_due": 0},
}


def test_afosto_money_and_times_are_read_leniently() -> None:
    invoice = Invoice.model_validate(INVOICE)
    assert (invoice.total, invoice.total_ex_vat) == (-2000, -1653)
    assert invoice.created_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert invoice.orders[0].number == "7"
    assert invoice.customer.customer_id == "org"


@pytest.mark.parametrize("money", [12.5, "12.5", "twelve", True, None])
def test_fractional_or_non_numeric_money_is_rejected(money: object) -> None:
    with pytest.raises(ValidationError):
        Invoice.model_validate(INVOICE | {"total": money})


def test_order_ignores_unknown_actions_and_fields() -> None:
    order = Order.model_validate(
        {
            "id": "o",
            "number": "1",
            "customer": {"contact": {"id": "c", "email": "e"}},
            "actions": [
                {"action": "INVOICE", "ids": ["b", "a", "a"]},
                {"action": "SHIP_IT", "ids": ["z"]},
                {"action": "HANDLE_FINISH", "ids": ["c"]},
            ],
            "novel": 1,
        }
    )
    assert order.invoiceable_ids == ("a", "b")
    assert order.pending_return_actions == ("HANDLE_FINISH",)


def test_outbound_events_forbid_unknown_fields() -> None:
    fields = {
        "event_id": "e",
        "occurred_at": datetime(2026, 1, 5, tzinfo=UTC),
        "correlation_id": "c",
        "invoice_id": "i",
        "invoice_number": "n",
        "pdf_url": "https://x",
    }
    assert PdfReady.model_validate(fields).schema_version == 1
    with pytest.raises(ValidationError):
        PdfReady.model_validate(fields | {"surprise": 1})
    assert InvoiceCreated.model_config.get("extra") == "forbid"
