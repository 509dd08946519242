"""Stage plan: INVOICE ids → intent; early events re-check until the deadline (DESIGN §3)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handlers.errors import Permanent, Transient
from handlers.ids import invoice_id_for
from handlers.plan import plan
from handlers.ports import Forward
from schemas.inbound import TriggerEvent, parse_trigger
from schemas.internal import Intent
from tests.unit.fakes import CTX, T0, FakeAfosto, forwards, make_deps
from tests.unit.harness import trigger


def event(order_id: str = "o1", event_type: str = "order.shipped", **kw: object) -> TriggerEvent:
    return parse_trigger(trigger(order_id, "ev-1", event_type, **kw), "application/json", None)


async def test_invoiceable_ids_become_one_deterministic_intent() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["i3", "i1", "i2"], customer_id="c9")
    out = await plan(event(), make_deps(api), CTX)
    assert len(out) == 1
    fwd = out[0]
    assert isinstance(fwd, Forward)
    assert isinstance(fwd.message, Intent)
    assert fwd.stage == "intents"
    assert fwd.delay is None
    assert fwd.message.item_ids == ("i1", "i2", "i3")
    assert fwd.message.invoice_id == invoice_id_for(["i2", "i3", "i1"])
    assert fwd.message_id == f"intent:{fwd.message.invoice_id}"
    assert fwd.message.customer_id == "c9"
    assert fwd.correlation_id == fwd.message.correlation_id == "ev-1"
    assert fwd.message.first_seen == T0


async def test_same_items_give_the_same_intent_on_a_replay() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a", "b"])
    first = await plan(event(), make_deps(api), CTX)
    again = await plan(event(), make_deps(api), CTX)
    assert [f.message.model_dump() for f in first if isinstance(f, Forward)] == [
        f.message.model_dump() for f in again if isinstance(f, Forward)
    ]


async def test_nothing_invoiceable_and_nothing_promised_is_done() -> None:
    api = FakeAfosto()
    api.add_order("o1", [])
    assert await plan(event(), make_deps(api), CTX) == []


async def test_items_already_invoiced_mean_a_late_duplicate() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a"])
    await api.invoice_items(["a"], "inv-1")
    assert await plan(event(item_ids=["a"]), make_deps(api), CTX) == []


async def test_unknown_order_is_transient_with_a_short_grace() -> None:
    with pytest.raises(Transient) as err:
        await plan(event("nope"), make_deps(FakeAfosto()), CTX)
    assert err.value.exhausted_reason == "order_not_found"
    assert err.value.max_attempts is not None
    assert err.value.max_attempts <= 5


async def test_early_shipment_is_rechecked_with_growing_delays_then_invoiced() -> None:
    api = FakeAfosto()
    order = api.add_order("o1", [])
    deps = make_deps(api)
    message = event(item_ids=["a", "b"])
    delays = []
    for _ in range(3):
        (fwd,) = forwards(await plan(message, deps, CTX))
        assert isinstance(fwd, Forward)
        assert fwd.stage == "triggers"
        assert isinstance(fwd.message, TriggerEvent)
        assert fwd.delay is not None
        delays.append(fwd.delay)
        api.clock.advance(fwd.delay)
        # the wire form keeps the state and the original event
        message = parse_trigger(fwd.message.model_dump_json().encode(), "application/json", None)
        assert message.invoicer_recheck is not None
        assert message.invoicer_recheck.first_seen == T0
        assert message.item_ids == ("a", "b")
    assert delays[0] < delays[1] < delays[2]
    order.invoiceable = ["a", "b"]
    (fwd,) = forwards(await plan(message, deps, CTX))
    assert isinstance(fwd.message, Intent)
    assert fwd.message.item_ids == ("a", "b")
    assert fwd.message.first_seen == T0


async def test_promise_never_kept_dead_letters_not_invoiceable_at_the_deadline() -> None:
    api = FakeAfosto()
    api.add_order("o1", [])
    deps = make_deps(api, recheck_deadline=timedelta(minutes=10))
    message = event(item_ids=["ghost"])
    checks = 0
    while True:
        try:
            (fwd,) = forwards(await plan(message, deps, CTX))
        except Permanent as exc:
            error = exc
            break
        assert isinstance(fwd.message, TriggerEvent)
        assert fwd.delay is not None
        assert api.clock.now() + fwd.delay <= T0 + timedelta(minutes=10, seconds=1)
        api.clock.advance(fwd.delay)
        message = fwd.message
        checks += 1
    assert error.reason == "not_invoiceable"
    assert "o1" in error.detail
    assert "ghost" in error.detail
    assert api.clock.now() == T0 + timedelta(minutes=10)
    assert 3 < checks < 20


async def test_return_waits_while_approval_is_pending() -> None:
    api = FakeAfosto()
    order = api.add_order("o1", [], pending={"HANDLE_APPROVAL": ["c1"]})
    deps = make_deps(api)
    (fwd,) = forwards(await plan(event(event_type="order.returned"), deps, CTX))
    assert fwd.stage == "triggers"
    assert await plan(event(event_type="order.shipped"), deps, CTX) == []
    order.pending = {}
    order.invoiceable = ["c1"]
    assert isinstance(fwd.message, TriggerEvent)
    (intent,) = forwards(await plan(fwd.message, deps, CTX))
    assert isinstance(intent.message, Intent)
    assert intent.message.event_type == "order.returned"


async def test_partial_promise_sends_the_intent_and_keeps_watching() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a"])
    intent, recheck = forwards(await plan(event(item_ids=["a", "b"]), make_deps(api), CTX))
    assert isinstance(intent.message, Intent)
    assert intent.message.item_ids == ("a",)
    assert recheck.stage == "triggers"


async def test_past_the_deadline_an_intent_still_goes_out_with_one_last_look() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["a"])
    deps = make_deps(api, recheck_deadline=timedelta(minutes=1))
    api.clock.advance(timedelta(minutes=2))
    late = event(item_ids=["a", "b"], invoicer_recheck={"first_seen": T0.isoformat(), "check": 4})
    intent, last = forwards(await plan(late, deps, CTX))
    assert isinstance(intent.message, Intent)
    assert isinstance(last.message, TriggerEvent)
    assert last.message.invoicer_recheck is not None
    assert last.message.invoicer_recheck.last_intent == intent.message_id
    with pytest.raises(Permanent) as err:  # the same intent again: it is on its way already
        await plan(last.message, deps, CTX)
    assert err.value.reason == "not_invoiceable"


def _trigger_of(fwd: Forward) -> TriggerEvent:
    assert isinstance(fwd.message, TriggerEvent)
    return fwd.message


def _items_of(fwd: Forward) -> tuple[str, ...]:
    assert isinstance(fwd.message, Intent)
    return fwd.message.item_ids


async def test_past_the_deadline_a_new_intent_is_never_dropped() -> None:
    api = FakeAfosto()
    order = api.add_order("o1", [], pending={"HANDLE_APPROVAL": ["c1", "c2"]})
    deps = make_deps(api, recheck_deadline=timedelta(minutes=1))
    (look,) = forwards(await plan(event(event_type="order.returned"), deps, CTX))
    api.clock.advance(timedelta(minutes=2))
    order.pending, order.invoiceable = {"HANDLE_FINISH": ["c1"]}, ["c1"]
    first, look = forwards(await plan(_trigger_of(look), deps, CTX))
    await api.invoice_items(["c1"], "inv-c1")
    order.pending, order.invoiceable = {"HANDLE_FINISH": ["c2"]}, ["c2"]
    api.clock.advance(timedelta(minutes=5))
    second, look = forwards(await plan(_trigger_of(look), deps, CTX))
    assert [_items_of(first), _items_of(second)] == [("c1",), ("c2",)]
    await api.invoice_items(["c2"], "inv-c2")
    with pytest.raises(Permanent) as err:  # still pending, nothing new to send: give up loudly
        await plan(_trigger_of(look), deps, CTX)
    assert err.value.reason == "not_invoiceable"


async def test_return_of_units_never_invoiced_is_nothing_to_credit() -> None:
    api = FakeAfosto()
    api.add_order("o1", [], units=["u1", "u2"])
    assert (
        await plan(event(event_type="order.returned", item_ids=["u1"]), make_deps(api), CTX) == []
    )


async def test_return_relies_on_pending_steps_only_and_shipments_on_item_ids() -> None:
    api = FakeAfosto()
    api.add_order("o1", [], units=["u1"])
    returned = event(event_type="order.returned", item_ids=["u9"])
    assert await plan(returned, make_deps(api), CTX) == []
    # a shipment of a unit not yet shipped (listed, but not invoiceable) is early
    (fwd,) = forwards(await plan(event(item_ids=["u1"]), make_deps(api), CTX))
    assert fwd.stage == "triggers"


async def test_late_shipment_of_units_returned_before_invoicing_is_not_early() -> None:
    api = FakeAfosto()
    api.add_order("o1", ["u2"], units=["u1", "u2"], pending={"HANDLE_APPROVAL": ["u1"]})
    (fwd,) = forwards(await plan(event(item_ids=["u1", "u2"]), make_deps(api), CTX))
    assert fwd.stage == "intents"
    assert isinstance(fwd.message, Intent)
    assert fwd.message.item_ids == ("u2",)
