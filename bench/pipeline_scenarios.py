"""bench/pipeline.py's scenarios: the API each runs against (the stand-in or the sandbox, with
its latency and PDF delays) and the seeded deliveries it sends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bench import runner
from bench.amqp import shipped_event
from bench.children import HttpApi, sandbox_process, standin_process


@dataclass(frozen=True)
class Scenario:
    name: str
    api: str  # "standin" | "sandbox"
    latency_ms: float
    pdf_min_s: float
    pdf_max_s: float
    events: int | None = None  # None: the run's --events


SCENARIOS: dict[str, Scenario] = {
    "standin": Scenario("standin", "standin", 0.0, 0.0, 0.0),
    # Not in the default run. The PDF comes later, so every event takes all three stages and a
    # wait tier, as in the ceiling's pattern (with the PDF at once the service skips the PDF
    # stage); in a short backlog the PDF delays dominate the time to the last pdf_ready.
    "standin-pdf": Scenario("standin-pdf", "standin", 0.0, 0.2, 2.0),
    "sandbox-0ms": Scenario("sandbox-0ms", "sandbox", 0.0, 0.2, 2.0),
    # Full size: the default run took 101 s on the shared 2 cores (set `events` to scale down).
    "sandbox-50ms": Scenario("sandbox-50ms", "sandbox", 50.0, 0.2, 2.0),
}

DEFAULT_SCENARIOS = ("standin", "sandbox-0ms", "sandbox-50ms")


@asynccontextmanager
async def api_for(scenario: Scenario, seed: int) -> AsyncIterator[HttpApi]:
    if scenario.api == "standin":
        async with standin_process(
            seed=seed,
            pdf_delay_s=scenario.pdf_min_s,
            pdf_delay_max_s=scenario.pdf_max_s,
            latency_ms=scenario.latency_ms,
        ) as api:
            yield api
    else:
        faults = {
            "latency_ms": scenario.latency_ms,
            "pdf_delay_min_s": scenario.pdf_min_s,
            "pdf_delay_max_s": scenario.pdf_max_s,
        }
        async with sandbox_process(seed=seed, faults=faults) as api:
            yield api


def deliveries(
    order_ids: Sequence[str], duplicates: float, seed: int
) -> list[tuple[str, bytes, str]]:
    """One event per order plus `duplicates` × orders repeated deliveries (same event id, as a
    real bus redelivers), in a seeded order."""
    rng = runner.seeded(seed, "pipeline-deliveries")
    events = [(o, f"shipped-{o}") for o in order_ids]
    events += rng.choices(events, k=round(len(events) * duplicates)) if events else []
    rng.shuffle(events)
    return [("order.shipped", shipped_event(o, e), o) for o, e in events]
