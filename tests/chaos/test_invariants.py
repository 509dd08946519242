"""The invariant checks themselves: each one passes on a clean observation and fails on the
violation it exists for (so a green chaos run cannot be a vacuous one)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractQueue

from consumer.amqp.publisher import DEAD_REASON_HEADER
from sandbox.catalog import Catalog
from sandbox.invoices import Invoice
from sandbox.ledger import Ledger
from sandbox.store import LineSpec, Store
from tests.chaos.driver import Answer, Sent
from tests.chaos.invariants import check_all
from tests.chaos.observe import Seen, Tap
from tests.chaos.state import Observed

BASE = "http://127.0.0.1:1"
CANARY = "apicanary0123456789"


def created(invoice: Invoice, event_id: str = "ev-1", at: float = 1.0) -> Seen:
    body: dict[str, Any] = {
        "event_id": event_id,
        "invoice": {
            "id": invoice.id,
            "number": invoice.number,
            "kind": "credit" if invoice.total < 0 else "invoice",
            "currency": invoice.currency,
            "subtotal": invoice.subtotal,
            "total": invoice.total,
            "total_ex_vat": invoice.total_ex_vat,
            "vat": [{"rate": v.rate, "amount": v.amount} for v in invoice.vat],
            "lines": [
                {"item_ids": ln.ids, "order_id": ln.order_id, "sku": ln.sku,
                 "quantity": ln.quantity, "unit_price": ln.unit_price, "total": ln.total,
                 "total_ex_vat": ln.total_ex_vat, "is_contra": ln.is_contra}
                for ln in invoice.lines
            ],
            "orders": [{"id": o.id} for o in invoice.orders],
            "customer": {"id": invoice.customer.id},
        },
    }  # fmt: skip
    return Seen("invoice.created", json.dumps(body).encode(), body, event_id, {}, at)


def ready(invoice: Invoice, at: float = 2.0) -> Seen:
    body = {"event_id": "ev-2", "invoice_id": invoice.id, "pdf_url": f"{BASE}/pdf/{invoice.id}.pdf"}
    return Seen("invoice.pdf_ready", json.dumps(body).encode(), body, "ev-2", {}, at)


def dead(message_id: str, reason: str) -> Seen:
    return Seen("", b"{}", {}, message_id, {DEAD_REASON_HEADER: reason}, 3.0)


def acked(message_id: str) -> str:
    return json.dumps({"stage": "triggers", "outcome": "acked", "message_id": message_id})


def clean() -> tuple[Observed, Invoice]:
    """One shipped order invoiced and announced, one poison message dead-lettered."""
    store = Store(seed=1)
    ledger = Ledger(store.invoiceable)
    store.on_invoice.append(ledger.record_invoice)
    order = store.create_order(Catalog(1).customer(), [LineSpec("S", "Sok", 500, 2, 21)])
    ids = store.ship(order.id)
    invoice = store.invoice_items(ids, "inv-1")
    invoice.pdf_ready_at = 0.0
    queue = cast(AbstractQueue, None)
    out = Tap(queue, [created(invoice), ready(invoice)])
    observed = Observed(
        ledger=ledger, base_url=BASE, out=out, dead=Tap(queue, [dead("p-1", "invalid_json")]),
        sent=[Sent("e-1", "fact", order.id, 0.5, begun=0.4),
              Sent("p-1", "poison", "", 0.5, "invalid_json")],
        answers=[Answer("msg_1", 200, 1.0)],
        attack_answers=[Answer("missing signature", 401, 1.0, 401)],
        attacks_planned=1, log_lines=[acked("e-1")], queues={"t.triggers": (0, 2)},
        stage_queues=["t.triggers"], dead_queue="t.dead", capture_queue="t.capture",
        live_processes=2, canaries={"API key": CANARY}, recovery_s=5.0, quiesced=True,
        rss_growth_mb=1.0, down_windows=[(10.0, 15.0)],
    )  # fmt: skip
    return observed, invoice


def failing(observed: Observed) -> list[int]:
    return [c.number for c in check_all(observed) if not c.ok]


def test_a_clean_observation_passes_every_check() -> None:
    observed, _ = clean()
    assert failing(observed) == []


def test_an_item_on_two_invoices_fails_exactly_once() -> None:
    observed, invoice = clean()
    observed.ledger.record_invoice(invoice)
    assert 1 in failing(observed)


def test_two_event_ids_for_one_invoice_fail() -> None:
    observed, invoice = clean()
    observed.out.messages.append(created(invoice, event_id="ev-other"))
    assert failing(observed) == [2]


def test_a_payload_that_differs_from_the_ledger_fails() -> None:
    observed, invoice = clean()
    wrong = created(invoice)
    wrong.body["invoice"]["total"] += 1
    observed.out.messages[0] = wrong
    assert failing(observed) == [2]


def test_pdf_ready_before_invoice_created_fails() -> None:
    observed, _ = clean()
    observed.out.messages.reverse()
    assert failing(observed) == [3]


def test_an_event_without_any_trace_is_lost_but_a_later_order_query_covers_it() -> None:
    observed, _ = clean()
    observed.log_lines = []
    assert failing(observed) == [4]
    order_id = observed.sent[0].order_id
    observed.order_queries = {order_id: [0.1]}  # before the publish began: no evidence
    assert failing(observed) == [4]
    observed.order_queries = {order_id: [0.45]}
    assert failing(observed) == []


def test_leftover_messages_or_missing_consumers_fail() -> None:
    observed, _ = clean()
    observed.queues = {"t.triggers": (1, 2)}
    assert failing(observed) == [5]
    observed.queues = {"t.triggers": (0, 1)}
    assert failing(observed) == [5]


@pytest.mark.parametrize(
    "extra", [dead("e-1", "retries_exhausted"), dead("p-1", "schema_violation")]
)
def test_a_valid_event_or_a_wrong_reason_in_the_dead_letters_fails(extra: Seen) -> None:
    observed, _ = clean()
    observed.dead.messages.append(extra)
    assert failing(observed) == [6]


def test_a_pdf_timeout_for_a_pdf_that_appeared_fails() -> None:
    observed, invoice = clean()
    observed.dead.messages.append(
        replace(dead("pdf:x", "pdf_timeout"), body={"invoice_id": invoice.id})
    )
    assert 6 in failing(observed)


@pytest.mark.parametrize(
    ("status", "at", "bad"), [(500, 1.0, True), (503, 1.0, True), (503, 12.0, False)]
)
def test_webhook_5xx_only_as_503_while_the_broker_is_down(
    status: int, at: float, bad: bool
) -> None:
    observed, _ = clean()
    observed.answers.append(Answer("msg_2", status, at))
    assert failing(observed) == ([7] if bad else [])


def test_a_canary_anywhere_is_a_leak() -> None:
    observed, _ = clean()
    observed.log_lines.append(f"connecting with key {CANARY}")
    assert failing(observed) == [8]


def test_slow_recovery_or_rss_growth_fails() -> None:
    observed, _ = clean()
    assert failing(replace(observed, recovery_s=121.0)) == [9]
    assert failing(replace(observed, rss_growth_mb=51.0)) == [9]
