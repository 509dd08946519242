"""Stage plan: order event → the order's INVOICE ids → an intent (DESIGN §3).

The event is only a trigger: Afosto's order.actions decides. An empty INVOICE is "nothing to
do" unless the event promised something Afosto does not show yet (early event); then the
trigger comes back through the wait tiers until RECHECK_DEADLINE, then `not_invoiceable`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from handlers.delays import growing_delay, until_deadline
from handlers.errors import Permanent, Transient
from handlers.ids import intent_message_id, invoice_id_for, recheck_message_id
from handlers.ports import Context, Deps, Forward, Outgoing
from schemas.afosto import Order
from schemas.inbound import RecheckState, TriggerEvent
from schemas.internal import Intent

# An order event can beat the order's replication at Afosto by a moment: a short grace.
ORDER_NOT_FOUND_ATTEMPTS: Final = 4
RECHECK_FIRST: Final = timedelta(seconds=5)
RECHECK_CAP: Final = timedelta(minutes=5)


async def plan(event: TriggerEvent, deps: Deps, ctx: Context) -> list[Outgoing]:
    """Intent for what Afosto lists under INVOICE, plus a re-check when the event is early."""
    deps.crash("after_receive")
    order = await order_or_grace(deps, event.order_id, f"event {event.event_id}")
    now = deps.clock.now()
    state = event.invoicer_recheck
    first_seen = state.first_seen if state else now
    intent = _intent(order, event, first_seen) if order.invoiceable_ids else None
    out: list[Outgoing] = [intent] if intent else []
    waiting = _waiting_for(event, order)
    if waiting:
        deadline = first_seen + deps.recheck_deadline
        sent = intent.message_id if intent else None
        # Past the deadline only a new intent earns another look; one the previous look sent
        # already is invoiced, retrying or dead-lettered on its own, so nothing is dropped.
        if now >= deadline and (sent is None or sent == (state.last_intent if state else None)):
            raise Permanent(
                "not_invoiceable",
                f"order {order.id} after {event.event_type} {event.event_id}: {waiting} "
                f"still not invoiceable {deps.recheck_deadline} after first seen",
            )
        out.append(_recheck(event, first_seen, now, deadline, sent))
    return out


async def order_or_grace(deps: Deps, order_id: str, why: str) -> Order:
    """The order; not found is Transient for a short grace, then dead-letters order_not_found."""
    order = await deps.api.order(order_id)
    if order is None:
        raise Transient(
            f"order {order_id} ({why}) not found at Afosto",
            max_attempts=ORDER_NOT_FOUND_ATTEMPTS,
            exhausted_reason="order_not_found",
        )
    return order


def _intent(order: Order, event: TriggerEvent, first_seen: datetime) -> Forward:
    ids = order.invoiceable_ids
    intent = Intent(
        invoice_id=invoice_id_for(ids),
        order_id=order.id,
        customer_id=order.customer.customer_id,
        item_ids=ids,
        correlation_id=event.event_id,
        event_type=event.event_type,
        first_seen=first_seen,
    )
    return Forward("intents", intent, intent_message_id(intent.invoice_id), event.event_id)


def _waiting_for(event: TriggerEvent, order: Order) -> str:
    """What the event promised that Afosto does not show yet ('' when nothing)."""
    if event.event_type == "order.returned":
        # Returned ids are the original units; those never invoiced leave INVOICE and are on no
        # invoice, legitimately. A return is early only while its steps are pending.
        pending = order.pending_return_actions
        return f"return steps pending {list(pending)}" if pending else ""
    # Ids under a return step were shipped and returned before being invoiced: a late or
    # replayed shipment naming them is not early, they will never be invoiced.
    known = order.listed_ids | order.invoiced_ids
    missing = sorted(set(event.item_ids or ()) - known)
    return f"item ids {missing} neither under an action nor invoiced" if missing else ""


def _recheck(
    event: TriggerEvent,
    first_seen: datetime,
    now: datetime,
    deadline: datetime,
    sent: str | None,
) -> Forward:
    check = event.invoicer_recheck.check + 1 if event.invoicer_recheck else 1
    overdue = now >= deadline
    delay = RECHECK_CAP if overdue else growing_delay(check, first=RECHECK_FIRST, cap=RECHECK_CAP)
    state = RecheckState(first_seen=first_seen, check=check, last_intent=sent)
    again = event.model_copy(update={"invoicer_recheck": state})
    return Forward(
        "triggers",
        again,
        recheck_message_id(event.event_id, check),
        event.event_id,
        delay if overdue else until_deadline(delay, now, deadline),
    )
