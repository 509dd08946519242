"""The seeded workload: orders in the sandbox and a timeline of source events (facts, exact
and semantic duplicates, same-order pairs, order.updated noise, webhooks, poison)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from sandbox.catalog import PRODUCTS, Catalog
from sandbox.store import LineSpec, Store
from tests.chaos.tiers import Tier

Kind = Literal["ship", "ship_pair", "ship_update_pair", "return", "updated", "webhook", "poison"]


@dataclass
class Step:
    """One thing the outside world does at `at` seconds into the run."""

    at: float
    kind: Kind
    order_id: str = ""
    exact: list[float] = field(default_factory=list)  # delays of byte-identical copies
    semantic: list[float] = field(default_factory=list)  # delays of same-content, new-id copies
    part: int = 0  # ship: 0 = everything, 1/2 = first/second part
    poison: str = ""


@dataclass
class Plan:
    steps: list[Step]
    orders: list[str]
    two_part: set[str]
    returned: set[str]
    counts: Counter[str]

    @property
    def total_events(self) -> int:
        return sum(self.counts.values())


def create_orders(
    store: Store, tier: Tier, rng: random.Random
) -> tuple[list[str], set[str], set[str]]:
    """`tier.orders` OPEN orders of 1–5 units; which ship in two parts and which get returns."""
    catalog = Catalog(tier.seed)
    count = tier.orders
    two_part = set(rng.sample(range(count), round(count * tier.two_part_share)))
    rest = [i for i in range(count) if i not in two_part]
    returned = set(rng.sample(rest, round(count * tier.returned_share)))
    ids: list[str] = []
    for index in range(count):
        low = 2 if index in two_part or index in returned else 1
        units = rng.randint(low, 5)
        lines: list[LineSpec] = []
        while units:
            sku, label, price, rate = rng.choice(PRODUCTS)
            qty = rng.randint(1, units)
            lines.append(LineSpec(sku, label, price, qty, rate))
            units -= qty
        ids.append(store.create_order(catalog.customer(), lines).id)
    return ids, {ids[i] for i in two_part}, {ids[i] for i in returned}


def build_plan(store: Store, tier: Tier) -> Plan:
    """Orders in `store` and the timeline; event counts add up to `tier.events`."""
    rng = random.Random(f"chaos-workload:{tier.seed}")
    orders, two_part, returned = create_orders(store, tier, rng)
    window = tier.release_s
    steps: list[Step] = []
    counts: Counter[str] = Counter()
    pair_two_part = set(rng.sample(sorted(two_part), min(len(two_part), tier.pairs // 2)))
    single = [o for o in orders if o not in two_part]
    pair_update = set(rng.sample(single, tier.pairs - len(pair_two_part)))
    facts: list[Step] = []
    for order_id in orders:
        at = rng.uniform(0, window * 0.7)
        if order_id in pair_two_part:
            facts.append(Step(at, "ship_pair", order_id))
            counts["fact"] += 2
        elif order_id in two_part:
            facts.append(Step(at, "ship", order_id, part=1))
            facts.append(Step(at + rng.uniform(2, 10), "ship", order_id, part=2))
            counts["fact"] += 2
        elif order_id in pair_update:
            facts.append(Step(at, "ship_update_pair", order_id))
            counts["fact"] += 1
            counts["pair_extra"] += 1
        else:
            facts.append(Step(at, "ship", order_id))
            counts["fact"] += 1
        if order_id in returned:
            facts.append(Step(at + rng.uniform(10, 20), "return", order_id))
            counts["fact"] += 1
    poison = [Step(rng.uniform(0, window), "poison", poison=p) for p in tier.poison_kinds()]
    counts["poison"] = len(poison)
    webhooks = [
        Step(rng.uniform(0, window), "webhook", rng.choice(orders)) for _ in range(tier.webhooks)
    ]
    counts["webhook"] = len(webhooks)
    exact, semantic = (
        round(tier.events * tier.exact_share),
        round(tier.events * tier.semantic_share),
    )
    noise = tier.events - sum(counts.values()) - exact - semantic
    if noise < 0:
        raise ValueError(f"tier {tier.name}: {tier.events} events cannot hold {dict(counts)}")
    updates = [Step(rng.uniform(0, window), "updated", rng.choice(orders)) for _ in range(noise)]
    counts["updated"] = noise
    carriers = [s for s in facts if s.kind in ("ship", "return")] + updates
    for _ in range(exact):
        rng.choice(carriers).exact.append(rng.choice((0.0, rng.uniform(0.1, 8))))
    for _ in range(semantic):
        rng.choice([s for s in facts if s.kind == "ship"]).semantic.append(rng.uniform(0.1, 8))
    counts["exact_duplicate"], counts["semantic_duplicate"] = exact, semantic
    steps = sorted(facts + poison + webhooks + updates, key=lambda s: s.at)
    return Plan(steps, orders, two_part, returned, counts)
