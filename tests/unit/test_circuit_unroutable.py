"""The circuit's pause for an unroutable output: no Afosto probe, a wait that doubles while
pauses follow each other, and back to the shortest wait after a quiet spell."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from consumer.circuit import Circuit, CircuitConfig
from consumer.metrics import Metrics


class Consumers:
    def __init__(self) -> None:
        self.pauses = 0
        self.resumes = 0

    async def pause(self) -> None:
        self.pauses += 1

    async def resume(self) -> None:
        self.resumes += 1


async def test_unroutable_pauses_resume_without_asking_afosto_and_wait_longer_in_a_row() -> None:
    consumers = Consumers()
    probes: list[None] = []
    tasks: set[asyncio.Task[None]] = set()
    metrics = Metrics()

    async def probe() -> None:
        probes.append(None)

    def spawn(coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    config = CircuitConfig(probe_initial=0.05, probe_max=0.2)
    circuit = Circuit(
        consumers=consumers,
        probe=probe,
        metrics=metrics,
        config=config,
        lock=asyncio.Lock(),
        spawn=spawn,
    )
    paused_for = []
    for _ in range(4):
        started = time.monotonic()
        circuit.open("output_unroutable", "no queue bound")
        circuit.open("output_unroutable", "a second delivery, same moment")  # idempotent
        assert circuit.open_reason == "output_unroutable"
        assert metrics.registry.get_sample_value("invoicer_afosto_circuit_open", {}) == 0
        async with asyncio.timeout(5):
            await asyncio.gather(*tasks)
        paused_for.append(time.monotonic() - started)
        assert circuit.open_reason is None
        assert not circuit.paused
    assert probes == []  # Afosto is not asked: it is not to blame
    assert consumers.pauses == consumers.resumes == 4
    for took, least in zip(paused_for, (0.05, 0.1, 0.2, 0.2), strict=True):
        assert took >= least
    sample = metrics.registry.get_sample_value
    assert sample("invoicer_pauses_total", {"reason": "output_unroutable"}) == 4
    assert sample("invoicer_afosto_circuit_open", {}) == 0  # never blamed on Afosto
    # A quiet spell longer than probe_max since the last resume: the next pause is short again.
    await asyncio.sleep(config.probe_max + 0.05)
    assert circuit._unroutable_wait() == config.probe_initial
