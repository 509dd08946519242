"""Plays the workload against the broker and the services: the fulfilment pipeline (confirmed
AMQP events), Afosto's webhooks (signed POSTs) and a hostile sender (poison, attacks)."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import aiohttp
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

import sandbox
from sandbox.simulator import order_data
from tests.chaos.poison import Attack, attacks, envelope, poison, signed
from tests.chaos.workload import Plan, Step

_STEP_RNG: ContextVar[random.Random | None] = ContextVar("chaos_step_rng", default=None)


@dataclass
class Sent:
    """One source event the broker confirmed (or a webhook a service answered)."""

    message_id: str
    kind: (
        str  # fact | exact_duplicate | semantic_duplicate | pair_extra | updated | poison | webhook
    )
    order_id: str
    at: float  # monotonic time of the confirm / final answer
    reason: str = ""  # poison: the dead-letter reason it must get
    begun: float = 0.0  # monotonic time the successful publish (or POST) started


@dataclass
class Answer:
    name: str  # webhook message id, or the attack's name
    status: int
    at: float
    expected: int | None = None  # attacks only


class Driver:
    def __init__(
        self,
        sb: sandbox.Sandbox,
        connection: AbstractRobustConnection,
        exchange: str,
        plan: Plan,
        secret: str,
        ports: Callable[[], list[int]],
        seed: int,
    ) -> None:
        self.sb, self.plan, self.secret, self.ports = sb, plan, secret, ports
        self._connection, self._exchange_name = connection, exchange
        self._channel: AbstractChannel | None = None
        self._rng = random.Random(f"chaos-driver:{seed}")
        self._seed = seed
        self.sent: list[Sent] = []
        self.answers: list[Answer] = []
        self.attack_answers: list[Answer] = []
        self.publish_retries = 0
        self.returns_skipped = 0
        self.unconfirmed: list[str] = []  # never confirmed within 2 minutes (reported)
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.done_at: float | None = None

    def _id(self) -> str:
        return str(uuid.UUID(int=self._r().getrandbits(128), version=4))

    def _r(self) -> random.Random:
        """The running step's own random stream: ids and choices do not depend on how the
        concurrent steps happen to interleave."""
        return _STEP_RNG.get() or self._rng

    async def run(self, t0: float, attack_at: float) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            self._tasks.append(asyncio.ensure_future(self._attack(t0 + attack_at)))
            for index, step in enumerate(self.plan.steps):
                await asyncio.sleep(max(0.0, t0 + step.at - time.monotonic()))
                self._tasks.append(asyncio.ensure_future(self._play(step, index)))
            await asyncio.gather(*self._tasks)
        finally:
            await self._session.close()
            self.done_at = time.monotonic()

    # -- AMQP ------------------------------------------------------------------------------

    async def publish(
        self,
        key: str,
        body: bytes,
        message_id: str,
        kind: str,
        order_id: str,
        content_type: str = "application/json",
        reason: str = "",
    ) -> None:
        """Publish until the broker confirms (a real producer retries through outages)."""
        give_up = time.monotonic() + 120
        while True:
            begun = time.monotonic()
            try:
                if self._channel is None or self._channel.is_closed:
                    self._channel = await self._connection.channel(publisher_confirms=True)
                exchange = await self._channel.get_exchange(self._exchange_name, ensure=False)
                message = aio_pika.Message(
                    body,
                    content_type=content_type,
                    message_id=message_id,
                    type=key,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                await exchange.publish(message, routing_key=key, mandatory=True, timeout=5)
                break
            except Exception:
                self.publish_retries += 1
                self._channel = None
                if time.monotonic() > give_up:
                    self.unconfirmed.append(message_id)
                    return
                await asyncio.sleep(0.5)
        self.sent.append(Sent(message_id, kind, order_id, time.monotonic(), reason, begun))

    def _event(self, event_type: str, order_id: str, item_ids: list[str]) -> tuple[str, bytes]:
        event_id = self._id()
        body = {
            "event_type": event_type,
            "order_id": order_id,
            "event_id": event_id,
            "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        if item_ids:
            body["item_ids"] = item_ids  # type: ignore[assignment]
        return event_id, json.dumps(body, separators=(",", ":")).encode()

    async def _fact(
        self, step: Step, event_type: str, item_ids: list[str], kind: str = "fact"
    ) -> None:
        event_id, body = self._event(event_type, step.order_id, item_ids)
        await self.publish(event_type, body, event_id, kind, step.order_id)
        for delay in step.exact:
            self._later(
                delay, self.publish(event_type, body, event_id, "exact_duplicate", step.order_id)
            )
        for delay in step.semantic:
            copy_id, copy = self._event(event_type, step.order_id, item_ids)
            self._later(
                delay, self.publish(event_type, copy, copy_id, "semantic_duplicate", step.order_id)
            )

    def _later(self, delay: float, work: object) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            await work  # type: ignore[misc]

        self._tasks.append(asyncio.ensure_future(run()))

    # -- steps -----------------------------------------------------------------------------

    async def _play(self, step: Step, index: int) -> None:
        _STEP_RNG.set(random.Random(f"chaos-driver:{self._seed}:{index}"))
        store = self.sb.store
        if step.kind == "ship":
            await self._fact(step, "order.shipped", self._ship(step.order_id, step.part))
        elif step.kind == "ship_pair":
            first, second = self._ship(step.order_id, 1), self._ship(step.order_id, 2)
            await asyncio.gather(
                self._fact(step, "order.shipped", first),
                self._fact(Step(step.at, "ship", step.order_id), "order.shipped", second),
            )
        elif step.kind == "ship_update_pair":
            shipped = self._ship(step.order_id, 0)
            await asyncio.gather(
                self._fact(step, "order.shipped", shipped),
                self._fact(
                    Step(step.at, "updated", step.order_id), "order.updated", [], "pair_extra"
                ),
            )
        elif step.kind == "return":
            await self._return(step)
        elif step.kind == "updated":
            await self._fact(step, "order.updated", [], "updated")
        elif step.kind == "poison":
            message_id = f"poison-{step.poison}-{self._id()[:8]}"
            p = poison(step.poison, message_id)
            await self.publish(
                p.routing_key, p.body, message_id, "poison", "", p.content_type, p.reason
            )
        elif step.kind == "webhook":
            order = store.get_order(step.order_id)
            shipped = [u.id for line in order.lines for u in line.units if u.shipped]
            message_id = f"msg_{self._id()}"
            if shipped:
                data = {
                    "id": f"del_{self._id()[:8]}",
                    "order_id": order.id,
                    "status": "IN_TRANSIT",
                    "item_ids": shipped,
                }
                body = envelope("IN_TRANSIT", message_id, order.id, data)
            else:
                body = envelope("ORDER_UPDATED", message_id, order.id, order_data(order))
            await self._webhook(message_id, body, order.id)

    def _ship(self, order_id: str, part: int) -> list[str]:
        order = self.sb.store.get_order(order_id)
        todo = [
            u.id for line in order.lines for u in line.units if not u.shipped and not u.cancelled
        ]
        if part == 1:
            todo = todo[: max(1, len(todo) // 2)]
        return self.sb.store.ship(order_id, todo) if todo else []

    async def _return(self, step: Step) -> None:
        """Return about half the shipped units once they are invoiced; approve at once or later."""
        store, ledger = self.sb.store, self.sb.ledger
        order = store.get_order(step.order_id)
        shipped = [u.id for line in order.lines for u in line.units if u.shipped and not u.returned]
        deadline = time.monotonic() + 120
        # The ledger has no event to wait on; poll it.
        while any(i not in ledger.item_invoices for i in shipped) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        # Returning a unit before it is invoiced takes it out of INVOICE, and its shipment
        # event then rightly ends as not_invoiceable: return only invoiced units.
        invoiced = [i for i in shipped if i in ledger.item_invoices]
        if not invoiced:
            self.returns_skipped += 1
            return
        chosen = invoiced[: max(1, len(invoiced) // 2)]
        returned = store.return_units(step.order_id, chosen)
        early = self._r().random() < 0.5
        if not early:
            store.approve(step.order_id)
        await self._fact(step, "order.returned", returned)
        if early:  # the event arrives before Afosto approved: plan must re-check later
            await asyncio.sleep(self._r().uniform(1, 4))
            store.approve(step.order_id)

    # -- HTTP ------------------------------------------------------------------------------

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, float]:
        """POST to a live service (another one if it is unreachable); status and time."""
        assert self._session is not None
        deadline = time.monotonic() + 60
        while True:
            ports = self.ports()
            if ports:
                port = self._rng.choice(ports)
                try:
                    url = f"http://127.0.0.1:{port}/webhooks/afosto"
                    async with self._session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        return response.status, time.monotonic()
                except (aiohttp.ClientError, TimeoutError):
                    pass
            if time.monotonic() > deadline:
                return 0, time.monotonic()
            await asyncio.sleep(0.3)

    async def probe_webhook(self) -> None:
        """A valid ORDER_UPDATED delivery right now (the injector sends one into each outage)."""
        order = self.sb.store.get_order(self._r().choice(self.plan.orders))
        message_id = f"msg_{self._id()}"
        body = envelope("ORDER_UPDATED", message_id, order.id, order_data(order))
        await self._webhook(message_id, body, order.id)

    async def _webhook(self, message_id: str, body: bytes, order_id: str) -> None:
        """Deliver like Afosto: retry non-2xx answers (503 while the broker is away)."""
        give_up = time.monotonic() + 90
        while time.monotonic() < give_up:
            begun = time.monotonic()
            status, at = await self._post(body, signed(body, self.secret))
            self.answers.append(Answer(message_id, status, at))
            if 200 <= status < 300:
                if status == 200:
                    self.sent.append(Sent(message_id, "webhook", order_id, at, begun=begun))
                return
            await asyncio.sleep(1.0)

    async def _attack(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - time.monotonic()))
        for attack in attacks(self.secret):
            status, at = await self._post(attack.body, attack.headers)
            self.attack_answers.append(Answer(attack.name, status, at, attack.status))

    def attack_table(self) -> list[Attack]:
        return attacks(self.secret)
