"""The two tiers of issue 6: workload size, fault schedule and API fault mix."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from consumer.settings import CRASH_POINTS

POISON_KINDS = (
    "non_json",
    "json_not_object",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "too_large",
    "wrong_content_type",
    "unknown_order",
)
# Every kind of API failure the issue lists, at rates the retry budget can absorb.
API_FAULTS: dict[str, Any] = {
    "latency_ms": 3.0,
    "latency_jitter_ms": 15.0,
    "http_500_rate": 0.02,
    "http_502_rate": 0.015,
    "http_503_rate": 0.015,
    "http_429_rate": 0.02,
    "retry_after_s": 1,
    "retry_after_format": "mixed",
    "internal_error_rate": 0.02,
    "reset_rate": 0.015,
    "malformed_json_rate": 0.015,
    "hold_rate": 0.02,  # queries time out, mutations commit and then time out
    "hold_s": 2.5,
    "rate_limit_rps": 60.0,  # RATE_LIMITED in a 200 once the bucket is empty
    "rate_limit_burst": 30,
    "pdf_never_rate": 0.01,
    "pdf_delay_min_s": 0.2,
    "pdf_delay_max_s": 2.0,
}


@dataclass(frozen=True)
class Tier:
    name: str
    seed: int
    orders: int
    events: int
    exact_share: float
    semantic_share: float
    pairs: int
    processes: int
    two_part_share: float = 0.2
    returned_share: float = 0.1
    webhooks: int = 20
    poison_copies: int = 1
    release_s: float = 60.0  # source events are released over this window
    fault_window_s: float = 75.0  # faults happen in [5 s, this]; API faults stop at its end
    crash_rounds: int = 1  # each named crash point this many times
    random_kills: int = 3
    closes: int = 2
    outages: int = 1
    outage_s: float = 5.0
    broker_kills: int = 0
    storms: int = 1  # seconds-long RATE_LIMITED storms from the sandbox
    steady_slots: tuple[int, ...] = ()  # never killed nor armed: their RSS spans the whole run
    quiesce_s: float = 150.0
    pdf_deadline_s: int = 30
    recheck_deadline_s: int = 60
    api_faults: dict[str, Any] = field(default_factory=lambda: dict(API_FAULTS))

    def poison_kinds(self) -> list[str]:
        return [k for k in POISON_KINDS for _ in range(self.poison_copies)]

    def crash_points(self) -> list[str]:
        return [p for _ in range(self.crash_rounds) for p in CRASH_POINTS]

    def with_seed(self, seed: int) -> Tier:
        return replace(self, seed=seed)


# fmt: off
TIERS = {
    # A smoke run for developing the harness itself (under a minute).
    0: Tier("tier0", seed=0, orders=20, events=80, exact_share=0.2, semantic_share=0.05,
            pairs=4, processes=2, webhooks=5, release_s=24.0, fault_window_s=18.0,
            random_kills=1, closes=1, outages=1, outage_s=3.0, quiesce_s=90.0),
    1: Tier("tier1", seed=1, orders=100, events=400, exact_share=0.20, semantic_share=0.05,
            pairs=20, processes=2, release_s=75.0, fault_window_s=62.0, crash_rounds=2,
            random_kills=4, closes=3, outages=2),
    # Slot 0 is never killed, so its RSS growth spans the whole run.
    2: Tier("tier2", seed=2, orders=1000, events=5000, exact_share=0.25, semantic_share=0.05,
            pairs=200, processes=3, webhooks=200, poison_copies=3, release_s=480.0,
            fault_window_s=420.0, crash_rounds=4, random_kills=16, closes=8, outages=5,
            broker_kills=1, storms=4, steady_slots=(0,), quiesce_s=300.0, pdf_deadline_s=60,
            recheck_deadline_s=120),
}
# fmt: on
