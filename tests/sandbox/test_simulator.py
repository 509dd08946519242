"""The simulator: seeded realistic orders and the steps of an order's life."""

from __future__ import annotations

import aiohttp

import sandbox
from sandbox import Store
from sandbox.simulator import Simulator
from tests.sandbox.helpers import action_ids, invoice_ids_of


async def seeded_orders(seed: int) -> list[tuple[str, list[tuple[str, int, int]]]]:
    simulator = Simulator(Store(seed=seed), seed=seed)
    orders = await simulator.create_orders(30)
    return [(o.id, [(line.sku, len(line.units), line.rate) for line in o.lines]) for o in orders]


async def test_orders_are_realistic_and_seeded() -> None:
    orders = await seeded_orders(4)
    assert orders == await seeded_orders(4)
    assert orders != await seeded_orders(5)
    for _, lines in orders:
        assert 1 <= len(lines) <= 6
        assert all(1 <= quantity <= 3 and rate in (0, 9, 21) for _, quantity, rate in lines)
    simulator = Simulator(Store(seed=4), seed=4)
    created = await simulator.create_orders(30, ship_fraction=0.5)
    kinds = {o.customer.organisation is not None for o in created}
    assert kinds == {True, False}, "both businesses and consumers"
    shipped = [o for o in created if invoice_ids_of(o)]
    assert 5 < len(shipped) < 25
    assert all(line.price > 0 for o in created for line in o.lines)


async def test_a_whole_order_life_without_publishing_targets() -> None:
    simulator = Simulator(Store(seed=1), seed=1)
    order = await simulator.create_order()
    step = await simulator.ship(order.id, fraction=0.5)
    assert step.published == []
    assert invoice_ids_of(order) == step.item_ids
    simulator.store.invoice_items(step.item_ids)
    returned = await simulator.return_items(order.id, step.item_ids[:1])
    assert returned.item_ids == step.item_ids[:1]
    contra = action_ids(order, "HANDLE_APPROVAL")
    approved = await simulator.approve(order.id)
    assert approved.item_ids == contra
    assert invoice_ids_of(order) == contra


async def test_simulator_steps_over_the_control_api() -> None:
    async with sandbox.running(seed=2) as sb, aiohttp.ClientSession() as session:
        base = f"{sb.base_url}/_control/orders"
        async with session.post(base, json={"count": 2, "ship": True}) as response:
            assert response.status == 201
            created = await response.json()
        order = created[0]
        assert order["actions"]["INVOICE"] == order["item_ids"]
        sb.store.invoice_items(order["item_ids"])
        one = order["item_ids"][:1]
        async with session.post(f"{base}/{order['id']}/return", json={"item_ids": one}) as r:
            assert (await r.json())["item_ids"] == one
        async with session.post(f"{base}/{order['id']}/approve", json={"finish": False}) as r:
            contra = (await r.json())["item_ids"]
        async with session.get(f"{base}/{order['id']}") as r:
            actions = (await r.json())["actions"]
        assert actions == {"INVOICE": contra, "HANDLE_FINISH": contra}
        async with session.post(f"{base}/{order['id']}/finish") as r:
            assert (await r.json())["item_ids"] == contra
        async with session.post(f"{base}/{order['id']}/cancel", json={"item_ids": one}) as r:
            assert r.status == 400, "shipped units cannot be cancelled"
        async with session.post(f"{base}/nope/ship") as r:
            assert r.status == 404
        async with session.post(base, json={"policy": "ON_PAYMENT"}) as r:
            assert r.status == 400
        async with session.get(base) as r:
            assert [o["id"] for o in await r.json()] == [o["id"] for o in created]
