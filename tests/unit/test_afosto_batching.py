"""Coalesced invoice reads: the batcher alone (a fake fetch) and the batched document."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from graphql import FieldNode, OperationDefinitionNode, parse, print_ast

from consumer.afosto.batching import InvoiceBatcher, Result
from consumer.afosto.errors import NotSent
from consumer.afosto.operations import document, invoice_batch, invoice_request
from handlers.errors import Transient
from schemas.afosto import Invoice
from tests.unit.afosto_server import INVOICE

# -- the batcher alone ------------------------------------------------------------------------


def invoice(invoice_id: str) -> Invoice:
    return Invoice.model_validate(INVOICE | {"id": invoice_id})


class Fetches:
    """A fetch that records each batch and, when `gate` is set, waits for it to open."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.gate = gate
        self.active = 0
        self.most_active = 0

    async def __call__(self, ids: Sequence[str]) -> Mapping[str, Result]:
        self.batches.append(list(ids))
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0.01)
            return {i: None if i.startswith("gone") else invoice(i) for i in ids}
        finally:
            self.active -= 1


async def settled(*tasks: asyncio.Task[Any]) -> list[Any]:
    """Every task's outcome within 5 s: a hung future fails the test instead of hanging it."""
    async with asyncio.timeout(5):
        return await asyncio.gather(*tasks, return_exceptions=True)


async def test_ids_asked_for_in_one_tick_share_a_request_and_idle_ones_go_at_once() -> None:
    fetches = Fetches()
    batcher = InvoiceBatcher(fetches, max_in_flight=4)
    found = await asyncio.gather(*(batcher.get(f"inv-{n}") for n in range(10)))
    assert [i.id for i in found if i] == [f"inv-{n}" for n in range(10)]
    assert fetches.batches == [[f"inv-{n}" for n in range(10)]]
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await batcher.get("gone-1") is None  # idle: sent on the next tick, no waiting
    assert loop.time() - started < 0.1
    assert fetches.batches[-1] == ["gone-1"]


async def test_batches_are_capped_in_size_and_in_flight_and_later_ids_wait_together() -> None:
    gate = asyncio.Event()
    fetches = Fetches(gate)
    batcher = InvoiceBatcher(fetches, max_size=25, max_in_flight=2)
    first = [asyncio.create_task(batcher.get(f"a{n}")) for n in range(60)]
    await asyncio.sleep(0.01)
    assert [len(b) for b in fetches.batches] == [25, 25]  # two in flight, 10 waiting
    assert (batcher.in_flight, batcher.waiting) == (2, 10)
    later = [asyncio.create_task(batcher.get(f"b{n}")) for n in range(30)]
    await asyncio.sleep(0.01)
    assert len(fetches.batches) == 2  # nothing more goes while both are busy
    gate.set()
    results = await settled(*first, *later)
    assert all(isinstance(r, Invoice) for r in results)
    assert fetches.most_active == 2
    assert all(len(b) <= 25 for b in fetches.batches)
    assert sorted(i for b in fetches.batches for i in b) == sorted(
        [f"a{n}" for n in range(60)] + [f"b{n}" for n in range(30)]
    )
    assert len(fetches.batches) == 4  # 25 + 25, then the 40 that waited: 25 + 15


async def test_the_same_id_asked_for_twice_is_sent_once() -> None:
    fetches = Fetches()
    batcher = InvoiceBatcher(fetches)
    one, two = await asyncio.gather(batcher.get("inv-1"), batcher.get("inv-1"))
    assert one == two
    assert fetches.batches == [["inv-1"]]


async def test_a_caller_cancelled_while_waiting_drops_out_and_in_flight_is_ignored() -> None:
    gate = asyncio.Event()
    fetches = Fetches(gate)
    batcher = InvoiceBatcher(fetches, max_in_flight=1)
    busy = [asyncio.create_task(batcher.get(f"x{n}")) for n in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(batcher.get(f"y{n}")) for n in range(3)]
    await asyncio.sleep(0.01)
    waiting[1].cancel()  # still waiting: never sent
    busy[0].cancel()  # in flight: its answer is dropped
    gate.set()
    results = await settled(*busy, *waiting)
    assert isinstance(results[0], asyncio.CancelledError)
    assert isinstance(results[4], asyncio.CancelledError)
    assert [r.id for r in results if isinstance(r, Invoice)] == ["x1", "x2", "y0", "y2"]
    assert fetches.batches == [["x0", "x1", "x2"], ["y0", "y2"]]
    assert (batcher.in_flight, batcher.waiting) == (0, 0)


async def test_a_failed_fetch_reaches_every_caller_and_close_resolves_everyone() -> None:
    async def broken(ids: Sequence[str]) -> Mapping[str, Result]:
        raise ValueError("bug")

    batcher = InvoiceBatcher(broken)
    results = await settled(*(asyncio.create_task(batcher.get(f"i{n}")) for n in range(3)))
    assert all(isinstance(r, ValueError) for r in results)

    fetches = Fetches(asyncio.Event())  # never opens
    batcher = InvoiceBatcher(fetches, max_in_flight=1)
    in_flight = asyncio.create_task(batcher.get("sent"))
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(batcher.get("not-sent"))
    await asyncio.sleep(0.01)
    await batcher.close()
    sent, not_sent = await settled(in_flight, waiting)
    assert isinstance(sent, Transient)
    assert not isinstance(sent, NotSent)
    assert isinstance(not_sent, NotSent)
    with pytest.raises(NotSent):
        await batcher.get("after-close")


async def test_an_id_missing_from_the_answer_is_transient_for_that_caller_only() -> None:
    async def partial(ids: Sequence[str]) -> Mapping[str, Result]:
        return {i: invoice(i) for i in ids[:1]}

    batcher = InvoiceBatcher(partial)
    results = await settled(*(asyncio.create_task(batcher.get(f"i{n}")) for n in range(2)))
    assert isinstance(results[0], Invoice)
    assert isinstance(results[1], Transient)


# -- the documents ----------------------------------------------------------------------------


def test_the_batch_document_repeats_the_single_invoice_field_under_aliases() -> None:
    single = parse(document("invoice"))
    batch = parse(invoice_batch(3))
    (field,) = next(
        d for d in single.definitions if isinstance(d, OperationDefinitionNode)
    ).selection_set.selections
    operation = next(d for d in batch.definitions if isinstance(d, OperationDefinitionNode))
    fields = operation.selection_set.selections
    assert isinstance(field, FieldNode)
    assert [f.alias.value for f in fields if isinstance(f, FieldNode) and f.alias] == [
        "i0",
        "i1",
        "i2",
    ]
    for aliased in fields:
        assert isinstance(aliased, FieldNode)
        assert aliased.selection_set
        assert field.selection_set
        assert print_ast(aliased.selection_set) == print_ast(field.selection_set)
    # the same fragments, appended the same way
    assert invoice_batch(3).split("\n\n")[1:] == document("invoice").split("\n\n")[1:]
    assert invoice_batch(3) is invoice_batch(3)  # built once per size
    assert invoice_request(["a"]) == (document("invoice"), {"id": "a"}, ("invoice",))
    assert invoice_request(["a", "b"])[1:] == ({"i0": "a", "i1": "b"}, ("i0", "i1"))
