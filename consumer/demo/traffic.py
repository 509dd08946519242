"""Simulated fulfilment for the demo: orders shipped in parts, returns approved, events repeated.

Everything goes through the sandbox's simulator, so Afosto's state and the events about it
stay consistent, exactly as the service would meet them in production."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from sandbox import Ledger, Simulator
from sandbox.simulator import Step


@dataclass(frozen=True)
class TrafficPlan:
    orders: int = 300
    partial_rate: float = 0.6  # orders shipped in two parts
    return_rate: float = 0.35  # orders with a return (approved → credit invoice)
    duplicate_rate: float = 0.25  # events sent again, byte for byte
    in_flight: int = 20  # orders being worked on at once
    seed: int = 7


@dataclass
class TrafficStats:
    orders_done: int = 0
    shipments: int = 0
    partial_shipments: int = 0
    returns: int = 0
    approvals: int = 0
    amqp_events: int = 0
    webhooks: int = 0
    duplicates: int = 0
    failures: int = 0


class Traffic:
    """Runs `plan.orders` order lifecycles, `plan.in_flight` at a time."""

    def __init__(self, simulator: Simulator, ledger: Ledger, plan: TrafficPlan) -> None:
        self.plan = plan
        self.stats = TrafficStats()
        self._sim = simulator
        self._ledger = ledger
        # item id -> wall-clock time it became invoiceable (shipped; contra: return approved)
        self.ready_at: dict[str, float] = {}

    async def run(self) -> TrafficStats:
        limit = asyncio.Semaphore(self.plan.in_flight)

        async def one(index: int) -> None:
            async with limit:
                try:
                    await self._lifecycle(random.Random(f"{self.plan.seed}:{index}"))
                except (KeyError, ValueError) as exc:
                    # A simulator refusal is a demo bug, not a service failure; count it.
                    self.stats.failures += 1
                    raise RuntimeError(f"simulated order {index} failed: {exc}") from exc
                self.stats.orders_done += 1

        await asyncio.gather(*(one(i) for i in range(self.plan.orders)))
        return self.stats

    async def _lifecycle(self, rng: random.Random) -> None:
        order = await self._sim.create_order()
        units = [unit.id for line in order.lines for unit in line.units]
        shipped: list[str] = []
        if rng.random() < self.plan.partial_rate and len(units) > 1:
            shipped += await self._step(rng, self._sim.ship(order.id, fraction=0.5), ready=True)
            self.stats.partial_shipments += 1
            await asyncio.sleep(rng.uniform(0.2, 1.5))
        rest = [u for u in units if u not in shipped]
        shipped += await self._step(rng, self._sim.ship(order.id, rest), ready=True)
        if rng.random() < self.plan.return_rate:
            # Return only what was invoiced, so the return yields a credit invoice; a unit
            # returned before it was invoiced just leaves INVOICE, which the demo does not show.
            if not await self._invoiced(shipped, patience_s=60.0):
                return
            await self._step(rng, self._sim.return_items(order.id, fraction=0.5))
            self.stats.returns += 1
            # Approval comes later, as in a warehouse: order.returned arrives first, so the
            # service must re-check until Afosto lists the contra items under INVOICE.
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            await self._step(rng, self._sim.approve(order.id), ready=True)  # the contra ids
            self.stats.approvals += 1

    async def _step(
        self, rng: random.Random, call: Awaitable[Step], *, ready: bool = False
    ) -> list[str]:
        """Run one simulator step; with `ready`, its items just became invoiceable."""
        began = time.time()
        step = await call
        if ready:
            for item_id in step.item_ids:
                self.ready_at.setdefault(item_id, began)
        await self._announce(rng, step.published)
        return list(step.item_ids)

    async def _invoiced(self, item_ids: list[str], patience_s: float) -> bool:
        """Wait until Afosto's ledger shows every one of `item_ids` on an invoice."""
        deadline = asyncio.get_running_loop().time() + patience_s
        while asyncio.get_running_loop().time() < deadline:
            if all(i in self._ledger.item_invoices for i in item_ids):
                return True
            await asyncio.sleep(0.25)
        return False

    async def _announce(self, rng: random.Random, published: list[str]) -> None:
        """Count what a step sent, and send some of it again (late or at once)."""
        for message_id in published:
            message = self._sim.published[message_id]
            if message.channel == "amqp":
                self.stats.amqp_events += 1
                if message.name == "order.shipped":
                    self.stats.shipments += 1
            else:
                self.stats.webhooks += 1
            if rng.random() < self.plan.duplicate_rate:
                copies = rng.choice((1, 1, 2))
                await self._sim.republish(message_id, copies)
                self.stats.duplicates += copies
