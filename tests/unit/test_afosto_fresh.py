"""Fresh shared order reads: every caller's answer comes from a read sent after it asked."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import pytest

from consumer.afosto.errors import NotSent
from consumer.afosto.fresh import FreshReads
from handlers.errors import Transient


@dataclass(frozen=True)
class Read:
    key: str
    number: int  # 1 for the first fetch of all, 2 for the next...
    sent_at: float


class Fetches:
    """A fake fetch: numbers its reads; waits for `gate` when set, else `seconds`."""

    def __init__(self, seconds: float = 0.01, gate: asyncio.Event | None = None) -> None:
        self.reads: list[Read] = []
        self.seconds = seconds
        self.gate = gate
        self.fail_next: BaseException | None = None
        self.sent = asyncio.Condition()

    async def __call__(self, key: str) -> Read:
        read = Read(key, len(self.reads) + 1, time.monotonic())
        self.reads.append(read)
        async with self.sent:
            self.sent.notify_all()
        failure, self.fail_next = self.fail_next, None
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(self.seconds)
        if failure is not None:
            raise failure
        return read


async def settled(*aws: Any) -> list[Any]:
    """Every outcome within 5 s: a hung caller fails the test instead of hanging it."""
    async with asyncio.timeout(5):
        return await asyncio.gather(*aws, return_exceptions=True)


async def test_a_lone_caller_sends_one_read_at_once() -> None:
    fetches = Fetches()
    reads = FreshReads(fetches)
    asked = time.monotonic()
    read = await reads.get("order-1")
    assert read == fetches.reads[0]
    assert read.sent_at - asked < 0.5  # no batching delay: sent on the next tick
    assert reads.in_flight == 0


async def test_callers_in_one_tick_share_one_read() -> None:
    fetches = Fetches()
    shared: list[None] = []
    reads = FreshReads(fetches, on_shared=lambda: shared.append(None))
    answers = await settled(*(reads.get("order-1") for _ in range(5)))
    assert [a.number for a in answers] == [1] * 5
    assert len(fetches.reads) == 1
    assert len(shared) == 4


async def test_callers_during_a_read_join_one_read_sent_after_it_returns() -> None:
    gate = asyncio.Event()
    fetches = Fetches(gate=gate)
    shared: list[None] = []
    reads = FreshReads(fetches, window=60.0, on_shared=lambda: shared.append(None))
    first = asyncio.ensure_future(reads.get("order-1"))
    await asyncio.sleep(0.01)  # the first read is out
    assert len(fetches.reads) == 1
    later = [asyncio.ensure_future(reads.get("order-1")) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert len(fetches.reads) == 1  # the follow-up waits for the read in flight
    gate.set()
    answers = await settled(first, *later)
    assert [a.number for a in answers] == [1, 2, 2, 2]
    assert len(fetches.reads) == 2
    assert len(shared) == 2


async def test_a_follow_up_waits_at_most_the_window_for_a_slow_read() -> None:
    gate = asyncio.Event()  # the first read hangs until the end
    fetches = Fetches(gate=gate)
    reads = FreshReads(fetches, window=0.05)
    first = asyncio.ensure_future(reads.get("order-1"))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(reads.get("order-1")) for _ in range(3)]
    async with asyncio.timeout(5), fetches.sent:  # the follow-up goes while the first is out
        await fetches.sent.wait_for(lambda: len(fetches.reads) >= 2)
    gate.set()
    answers = await settled(first, *later)
    assert [a.number for a in answers] == [1, 2, 2, 2]
    assert fetches.reads[1].sent_at - fetches.reads[0].sent_at >= 0.05


async def test_other_keys_do_not_wait_or_share() -> None:
    gate = asyncio.Event()
    fetches = Fetches(gate=gate)
    reads = FreshReads(fetches)
    tasks = [asyncio.ensure_future(reads.get(f"order-{n}")) for n in range(3)]
    await asyncio.sleep(0.01)
    assert sorted(r.key for r in fetches.reads) == ["order-0", "order-1", "order-2"]
    gate.set()
    answers = await settled(*tasks)
    assert [a.key for a in answers] == ["order-0", "order-1", "order-2"]


async def test_an_error_reaches_every_sharer_and_the_next_call_reads_again() -> None:
    fetches = Fetches()
    fetches.fail_next = Transient("Afosto answered 503")
    reads = FreshReads(fetches)
    answers = await settled(*(reads.get("order-1") for _ in range(3)))
    assert all(isinstance(a, Transient) for a in answers)
    assert len(fetches.reads) == 1
    again = await reads.get("order-1")
    assert again.number == 2


async def test_a_cancelled_caller_leaves_the_read_to_the_others() -> None:
    gate = asyncio.Event()
    fetches = Fetches(gate=gate)
    reads = FreshReads(fetches)
    quitter = asyncio.ensure_future(reads.get("order-1"))
    stayer = asyncio.ensure_future(reads.get("order-1"))
    await asyncio.sleep(0.01)
    quitter.cancel()
    gate.set()
    quit_, stayed = await settled(quitter, stayer)
    assert isinstance(quit_, asyncio.CancelledError)
    assert stayed.number == 1
    assert len(fetches.reads) == 1


async def test_close_fails_waiting_callers_with_a_transient_error_and_refuses_new_ones() -> None:
    gate = asyncio.Event()
    fetches = Fetches(gate=gate)
    reads = FreshReads(fetches, window=60.0)
    out = asyncio.ensure_future(reads.get("order-1"))
    await asyncio.sleep(0.01)
    follow = asyncio.ensure_future(reads.get("order-1"))
    await asyncio.sleep(0.01)
    await reads.close()
    answers = await settled(out, follow)
    assert all(isinstance(a, Transient) for a in answers), answers
    with pytest.raises(NotSent):
        await reads.get("order-1")
    assert reads.in_flight == 0


@pytest.mark.parametrize("seed", range(5))
async def test_every_answer_was_sent_after_its_caller_asked(seed: int) -> None:
    rng = random.Random(seed)
    fetches = Fetches(seconds=0.004)
    reads = FreshReads(fetches)

    async def caller(key: str, after: float) -> tuple[float, Read]:
        await asyncio.sleep(after)
        asked = time.monotonic()
        return asked, await reads.get(key)

    calls = [caller(f"order-{rng.randrange(3)}", rng.uniform(0, 0.05)) for _ in range(120)]
    answers = await settled(*calls)
    for asked, read in answers:
        assert read.sent_at >= asked
    per_key: dict[str, set[int]] = {}
    for _, read in answers:
        per_key.setdefault(read.key, set()).add(read.number)
    assert len(fetches.reads) < len(calls)  # shared, or this test proves nothing
    assert sum(len(n) for n in per_key.values()) == len(fetches.reads)  # no read wasted
