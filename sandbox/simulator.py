"""The outside world: creates orders, ships, returns, approves and cancels, and announces
each step the way reality would (fulfilment events on AMQP, Afosto webhooks over HTTP)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sandbox.catalog import Catalog
from sandbox.model import Order, Policy, Unit, returnable, shippable
from sandbox.publish import AmqpPublisher, WebhookSender, compact_json
from sandbox.store import Store


@dataclass(frozen=True)
class Published:
    """One message as sent, kept so it can be sent again byte for byte."""

    channel: Literal["amqp", "webhook"]
    id: str  # event_id (AMQP) or message_id (webhook)
    name: str  # routing key or webhook event
    order_id: str
    body: bytes


@dataclass(frozen=True)
class Step:
    """What one simulator call changed and announced."""

    order_id: str
    item_ids: list[str]
    published: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "item_ids": self.item_ids, "published": self.published}


def order_data(order: Order) -> dict[str, Any]:
    """The order as ORDER_* webhooks carry it (no actions: the service must query those)."""
    customer = order.customer
    return {
        "id": order.id,
        "number": order.number,
        "status": order.status,
        "progress": order.status,
        "currency": order.currency,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "customer": {
            "reference": customer.reference,
            "contact": {"id": customer.contact.id, "email": customer.contact.email},
            "organisation": (
                {"id": customer.organisation.id, "name": customer.organisation.name}
                if customer.organisation
                else None
            ),
        },
        "items": [
            {"ids": i.ids, "sku": i.sku, "label": i.label, "quantity": i.quantity, "price": i.price}
            for i in order.items
        ],
        "total": order.total,
    }


class Simulator:
    """Python API behind the control API's /_control/orders routes."""

    def __init__(
        self,
        store: Store,
        *,
        seed: int = 0,
        amqp: AmqpPublisher | None = None,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self.store = store
        self.catalog = Catalog(seed)
        self.amqp = amqp
        self.webhooks = webhooks
        self.published: dict[str, Published] = {}
        self._rng = random.Random(f"simulator:{seed}")

    def _id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    async def create_order(
        self, *, policy: Policy = "AFTER_SHIPMENT", b2b: bool | None = None
    ) -> Order:
        """A realistic order (1–6 lines, 1–3 units each); Afosto announces ORDER_OPENED."""
        order = self.store.create_order(
            self.catalog.customer(b2b=b2b), self.catalog.lines(), policy=policy
        )
        await self._order_webhook("ORDER_OPENED", order)
        return order

    async def create_orders(self, count: int, *, ship_fraction: float = 0.5) -> list[Order]:
        """`count` orders, of which about `ship_fraction` get shipped completely."""
        orders = [await self.create_order() for _ in range(count)]
        for order in orders:
            if self._rng.random() < ship_fraction:
                await self.ship(order.id)
        return orders

    async def ship(
        self, order_id: str, item_ids: Sequence[str] | None = None, *, fraction: float = 1.0
    ) -> Step:
        """Ship units (default: all unshipped, or a seeded `fraction` of them)."""
        if item_ids is None and fraction < 1.0:
            item_ids = self._pick(order_id, shippable, fraction)
        shipped = self.store.ship(order_id, item_ids)
        published = [await self._event("order.shipped", order_id, shipped)]
        published.append(await self._in_transit(order_id, shipped))
        published.append(await self._order_webhook("ORDER_UPDATED", self.store.get_order(order_id)))
        return Step(order_id, shipped, [p for p in published if p])

    async def return_items(
        self, order_id: str, item_ids: Sequence[str] | None = None, *, fraction: float = 1.0
    ) -> Step:
        """Return shipped units; each then waits under HANDLE_APPROVAL."""
        if item_ids is None and fraction < 1.0:
            item_ids = self._pick(order_id, returnable, fraction)
        returned = self.store.return_units(order_id, item_ids)
        published = [await self._event("order.returned", order_id, returned)]
        published.append(await self._order_webhook("ORDER_UPDATED", self.store.get_order(order_id)))
        return Step(order_id, returned, [p for p in published if p])

    async def approve(
        self, order_id: str, item_ids: Sequence[str] | None = None, *, finish: bool = True
    ) -> Step:
        """Approve pending reversals: contra units appear under INVOICE."""
        approved = self.store.approve(order_id, item_ids, finish=finish)
        return await self._updated(order_id, approved)

    async def finish(self, order_id: str, item_ids: Sequence[str] | None = None) -> Step:
        return await self._updated(order_id, self.store.finish(order_id, item_ids))

    async def cancel(self, order_id: str, item_ids: Sequence[str]) -> Step:
        return await self._updated(order_id, self.store.cancel(order_id, item_ids))

    async def republish(self, message_id: str, copies: int = 1) -> int:
        """Send an earlier message again, byte for byte, `copies` times (duplicate delivery)."""
        original = self.published.get(message_id)
        if original is None:
            raise KeyError(message_id)
        for _ in range(copies):
            await self._send(original)
        return copies

    def _pick(self, order_id: str, allowed: Callable[[Unit], bool], fraction: float) -> list[str]:
        """A seeded `fraction` of the order's units that `allowed` accepts."""
        order = self.store.get_order(order_id)
        ids = [u.id for line in order.lines for u in line.units if allowed(u)]
        return self.catalog.pick(ids, fraction=fraction)

    # -- publishing -----------------------------------------------------------------------

    async def _updated(self, order_id: str, ids: list[str]) -> Step:
        published = await self._order_webhook("ORDER_UPDATED", self.store.get_order(order_id))
        return Step(order_id, ids, [published] if published else [])

    async def _event(self, event_type: str, order_id: str, item_ids: list[str]) -> str | None:
        if self.amqp is None:
            return None
        event_id = self._id()
        body = compact_json(
            {
                "event_type": event_type,
                "order_id": order_id,
                "event_id": event_id,
                "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "item_ids": item_ids,
            }
        )
        return await self._send(Published("amqp", event_id, event_type, order_id, body))

    async def _order_webhook(self, event: str, order: Order) -> str | None:
        return await self._webhook(event, "order", order.id, order.id, order_data(order))

    async def _in_transit(self, order_id: str, item_ids: list[str]) -> str | None:
        delivery_id = self._id()
        data = {
            "id": delivery_id,
            "order_id": order_id,
            "status": "IN_TRANSIT",
            "item_ids": item_ids,
            "method": {"name": "PostNL"},
            "track_trace_code": f"3S{self._rng.randrange(10**10, 10**11)}",
        }
        return await self._webhook("IN_TRANSIT", "delivery", delivery_id, order_id, data)

    async def _webhook(
        self, event: str, entity_type: str, entity_id: str, order_id: str, data: dict[str, Any]
    ) -> str | None:
        if self.webhooks is None:
            return None
        message_id = f"msg_{self._id()}"
        envelope = {
            "event": event,
            "data": data,
            "entity_id": entity_id,
            "entity_type": entity_type,
            "message_id": message_id,
            "triggered_at": int(time.time() * 1000),
        }
        return await self._send(
            Published("webhook", message_id, event, order_id, compact_json(envelope))
        )

    async def _send(self, message: Published) -> str:
        self.published[message.id] = message
        if message.channel == "amqp":
            assert self.amqp is not None
            await self.amqp.publish(message.name, message.body, message.id)
        else:
            assert self.webhooks is not None
            await self.webhooks.send(message.body, message.id)
        return message.id
