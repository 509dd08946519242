"""The per-process memory of confirmed work: expiry, bound, and one-at-a-time per key."""

from __future__ import annotations

import asyncio

from consumer.amqp.dedupe import Confirmed, OneAtATime


def test_confirmed_keys_expire() -> None:
    now = [0.0]
    seen = Confirmed(ttl=10, clock=lambda: now[0])
    seen.add("intents:a")
    assert "intents:a" in seen
    assert "intents:b" not in seen
    now[0] = 11
    assert "intents:a" not in seen
    assert len(seen) == 0


def test_confirmed_keeps_only_the_newest_keys() -> None:
    seen = Confirmed(max_keys=2)
    for key in ("a", "b", "c"):
        seen.add(key)
    assert "a" not in seen
    assert "b" in seen
    assert "c" in seen


async def test_one_at_a_time_serialises_a_key_and_forgets_it() -> None:
    gate = OneAtATime()
    order: list[str] = []

    async def work(key: str, name: str, pause: float) -> None:
        async with gate.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(pause)
            order.append(f"{name}-")

    await asyncio.gather(work("x", "first", 0.05), work("x", "second", 0), work("y", "other", 0))
    assert order.index("first-") < order.index("second+")
    assert order.index("other+") < order.index("first-")  # other keys do not wait
    assert len(gate) == 0
