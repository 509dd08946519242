"""Stage issue: invoiceItems → invoice.created + first PDF check; read before every retry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from handlers.errors import Conflict, Permanent, Transient
from handlers.ids import event_id_for, invoice_id_for
from handlers.issue import MAX_REPLANS, issue
from handlers.ports import CrashPoint, Emit, Forward
from schemas.afosto import Invoice
from schemas.internal import Intent, PdfCheck
from schemas.outbound import InvoiceCreated, PdfReady
from tests.unit.fakes import CTX, T0, FakeAfosto, forwards, make_deps


def intent_for(ids: Sequence[str], order_id: str = "o1", **kw: object) -> Intent:
    data: dict[str, object] = {
        "invoice_id": invoice_id_for(ids),
        "order_id": order_id,
        "customer_id": "cust-1",
        "item_ids": tuple(sorted(ids)),
        "correlation_id": "ev-1",
        "event_type": "order.shipped",
        "first_seen": T0,
    }
    return Intent.model_validate(data | kw)


def created_of(out: list[Emit | Forward]) -> InvoiceCreated:
    assert isinstance(out[0], Emit)
    assert isinstance(out[0].event, InvoiceCreated)
    return out[0].event


async def test_success_emits_invoice_created_then_schedules_the_pdf_check() -> None:
    api = FakeAfosto(prices={"a": 1210, "b": 2420})
    api.add_order("o1", ["a", "b"])
    intent = intent_for(["a", "b"])
    out = await issue(intent, make_deps(api), CTX)
    assert len(out) == 2
    emit, check = out
    assert isinstance(emit, Emit)
    assert isinstance(check, Forward)
    event = created_of(out)
    assert emit.event_type == "invoice.created"
    assert emit.event_id == event.event_id == event_id_for(intent.invoice_id, "invoice.created")
    assert emit.correlation_id == event.correlation_id == "ev-1"
    assert event.invoice.id == intent.invoice_id
    assert event.invoice.kind == "invoice"
    assert (event.invoice.total, event.invoice.total_ex_vat) == (3630, 3000)
    assert event.invoice.vat[0].amount == 630
    assert event.item_ids == ("a", "b")
    assert event.order_ids == ("o1",)
    assert event.occurred_at == event.invoice.created_at == T0
    assert check.stage == "pdf"
    assert check.delay == timedelta(seconds=1)
    assert isinstance(check.message, PdfCheck)
    assert check.message.check == 1
    assert check.message.created_at == T0


async def test_negative_total_is_a_credit_invoice() -> None:
    api = FakeAfosto(prices={"c1": -1210})
    api.add_order("o1", ["c1"])
    event = created_of(await issue(intent_for(["c1"]), make_deps(api), CTX))
    assert event.invoice.kind == "credit"
    assert event.invoice.total == -1210
    assert event.invoice.lines[0].is_contra


async def test_replayed_intent_reads_and_publishes_the_same_event_again() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a"])
    deps = make_deps(api)
    first = await issue(intent_for(["a"]), deps, CTX)
    again = await issue(intent_for(["a"]), deps, CTX)
    assert api.mutations() == 2
    assert len(api.invoices) == 1
    assert created_of(first).model_dump_json() == created_of(again).model_dump_json()


async def test_unknown_outcome_reads_before_retrying() -> None:
    api = FakeAfosto(commit_then_lose_answer=1)
    api.add_order("o1", ["a"])
    out = await issue(intent_for(["a"]), make_deps(api), CTX)
    assert created_of(out).invoice.id == invoice_id_for(["a"])
    assert [name for name, _ in api.calls] == ["invoice_items", "invoice"]
    assert api.mutations() == 1


async def test_items_partly_taken_by_another_event_are_re_planned() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a", "b", "c"])
    await api.invoice_items(["a", "b"], invoice_id_for(["a", "b"]))  # a racing event won
    (fwd,) = forwards(await issue(intent_for(["a", "b", "c"]), make_deps(api), CTX))
    assert isinstance(fwd, Forward)
    assert isinstance(fwd.message, Intent)
    assert fwd.stage == "intents"
    assert fwd.message.item_ids == ("c",)
    assert fwd.message.invoice_id == invoice_id_for(["c"])
    assert fwd.message.replans == 1
    assert fwd.delay is None
    assert fwd.message_id == f"intent:{fwd.message.invoice_id}"


async def test_items_all_taken_by_another_event_mean_nothing_to_do() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a", "b"])
    await api.invoice_items(["a", "b"], "someone-else")
    assert await issue(intent_for(["a", "b"]), make_deps(api), CTX) == []


async def test_validation_error_that_is_no_conflict_dead_letters_api_rejected() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a"], customer_id="c1")
    api.add_order("o2", ["b"], customer_id="c2")
    with pytest.raises(Permanent) as err:
        await issue(intent_for(["a", "b"]), make_deps(api), CTX)
    assert err.value.reason == "api_rejected"
    assert "customer" in err.value.detail
    assert api.invoices == {}


class RefusingAfosto(FakeAfosto):
    """Refuses every mutation although the items stay invoiceable."""

    async def invoice_items(self, item_ids: Sequence[str], invoice_id: str) -> Invoice:
        self.calls.append(("invoice_items", (tuple(item_ids), invoice_id)))
        raise Conflict("refused", field="items")


async def test_unexplained_refusal_retries_the_same_intent_later_then_gives_up() -> None:
    api = RefusingAfosto()
    api.add_order("o1", ["a"])
    deps = make_deps(api)
    intent = intent_for(["a"])
    for replans in range(1, MAX_REPLANS + 1):
        (fwd,) = forwards(await issue(intent, deps, CTX))
        assert isinstance(fwd.message, Intent)
        assert fwd.message.invoice_id == intent.invoice_id
        assert fwd.delay is not None
        assert fwd.message.replans == replans
        intent = fwd.message
    with pytest.raises(Permanent) as err:
        await issue(intent, deps, CTX)
    assert err.value.reason == "api_rejected"


class FailingAfosto(FakeAfosto):
    """Every mutation fails like a 5xx or a timeout, without committing anything."""

    async def invoice_items(self, item_ids: Sequence[str], invoice_id: str) -> Invoice:
        self.calls.append(("invoice_items", (tuple(item_ids), invoice_id)))
        raise Conflict("HTTP 502", unknown_outcome=True)


async def test_unknown_outcome_without_an_invoice_is_transient_not_a_replan() -> None:
    api = FailingAfosto()
    api.add_order("o1", ["a"])
    with pytest.raises(Transient) as err:
        await issue(intent_for(["a"]), make_deps(api), CTX)
    assert err.value.exhausted_reason == "retries_exhausted"
    assert err.value.max_attempts is None  # the consume loop's INVOICER_MAX_ATTEMPTS
    assert [name for name, _ in api.calls] == ["invoice_items", "invoice", "order"]


async def test_unknown_outcome_for_items_partly_taken_re_plans_the_rest() -> None:
    api = FailingAfosto()
    api.add_order("o1", ["b"])
    (fwd,) = forwards(await issue(intent_for(["a", "b"]), make_deps(api), CTX))
    assert isinstance(fwd.message, Intent)
    assert fwd.message.item_ids == ("b",)


async def test_existing_invoice_with_other_items_is_never_taken_for_ours() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a", "b"])
    await api.invoice_items(["a"], invoice_id_for(["a", "b"]))  # our id, other items
    with pytest.raises(Permanent) as err:
        await issue(intent_for(["a", "b"]), make_deps(api), CTX)
    assert err.value.reason == "api_rejected"
    assert "'b'" in err.value.detail


class Crash(Exception):
    pass


@pytest.mark.parametrize("point", ["after_receive", "after_mutation_returned"])
async def test_crash_at_a_named_point_then_redelivery_invoices_once(point: CrashPoint) -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a", "b"])
    seen: list[str] = []

    def crash(at: CrashPoint) -> None:
        seen.append(at)
        if at == point:
            raise Crash(at)

    with pytest.raises(Crash):
        await issue(intent_for(["a", "b"]), make_deps(api, crash=crash), CTX)
    out = await issue(intent_for(["a", "b"]), make_deps(api), CTX)
    assert point in seen
    assert len(api.invoices) == 1
    assert created_of(out).item_ids == ("a", "b")


async def test_refused_intent_of_an_unknown_order_ends_in_order_not_found() -> None:
    api = FakeAfosto()  # no such order: its items are not invoiceable either
    with pytest.raises(Transient) as err:
        await issue(intent_for(["a"], order_id="gone"), make_deps(api), CTX)
    assert err.value.exhausted_reason == "order_not_found"
    assert "gone" in err.value.detail


async def test_a_pdf_that_exists_at_creation_is_announced_without_a_poll() -> None:
    api = FakeAfosto(pdf_after=timedelta(0))
    api.add_order("o1", ["a"])
    await api.invoice_items(["a"], invoice_id_for(["a"]))  # a redelivered intent: it exists
    out = await issue(intent_for(["a"]), make_deps(api), CTX)  # read back: PDF rendered
    created, ready = out
    assert isinstance(created, Emit)
    assert created.event_type == "invoice.created"  # first: published and confirmed before
    assert isinstance(ready, Emit)
    assert isinstance(ready.event, PdfReady)
    assert ready.event_id == event_id_for(invoice_id_for(["a"]), "invoice.pdf_ready")
    assert ready.event.occurred_at == created_of(out).invoice.created_at  # same on redelivery
    assert ready.event.pdf_url.endswith(".pdf")
