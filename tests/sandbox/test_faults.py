"""Fault injection: seeded determinism, configuration, and the token bucket (no HTTP)."""

from __future__ import annotations

import pytest

from sandbox import FaultConfig, FaultController
from sandbox.faults import TokenBucket

MIXED = {
    "reset_rate": 0.05,
    "http_500_rate": 0.05,
    "http_502_rate": 0.05,
    "http_503_rate": 0.05,
    "http_429_rate": 0.1,
    "internal_error_rate": 0.1,
    "hold_rate": 0.1,
    "malformed_json_rate": 0.1,
    "latency_jitter_ms": 50.0,
    "latency_spike_rate": 0.1,
    "latency_spike_ms": 500.0,
}


def decisions(seed: int, count: int = 300) -> list[tuple[float, str | None, str | None]]:
    controller = FaultController(FaultConfig().updated(MIXED), seed=seed)
    return [
        (d.delay_s, d.pre, d.post)
        for d in (controller.decide("order" if i % 3 else "mutation") for i in range(count))
    ]


def test_same_seed_same_faults() -> None:
    assert decisions(42) == decisions(42)


def test_other_seed_other_faults() -> None:
    assert decisions(42) != decisions(43)


def test_every_kind_occurs_at_its_rate_roughly() -> None:
    outcomes = decisions(1, 4000)
    pres = [pre for _, pre, _ in outcomes]
    posts = [post for _, _, post in outcomes]
    assert 250 < pres.count("internal_error") < 550  # 10 %
    assert 100 < pres.count("reset") < 320  # 5 %
    assert {p for p in pres if p} == {
        "reset",
        "http_500",
        "http_502",
        "http_503",
        "http_429",
        "internal_error",
    }
    assert {p for p in posts if p} == {"hold", "malformed"}


def test_reset_restarts_the_sequence() -> None:
    controller = FaultController(seed=5)
    controller.configure(**MIXED)
    first = [controller.decide("order") for _ in range(50)]
    controller.reset(seed=5)
    controller.configure(**MIXED)
    assert [controller.decide("order") for _ in range(50)] == first


def test_out_of_scope_operations_draw_nothing() -> None:
    scoped = FaultController(seed=9)
    scoped.configure(http_500_rate=1.0, operations="mutation")
    assert scoped.decide("order").pre is None
    assert scoped.decide("mutation").pre == "http_500"


@pytest.mark.parametrize(
    "changes",
    [
        {"no_such_knob": 1},
        {"http_500_rate": 1.5},
        {"latency_ms": -1},
        {"retry_after_format": "weeks"},
        {"operations": ["order", "bogus"]},
        {"pdf_delay_min_s": 3, "pdf_delay_max_s": 1},
        {"hold_s": "soon"},
    ],
)
def test_bad_configuration_is_refused(changes: dict[str, object]) -> None:
    controller = FaultController()
    with pytest.raises(ValueError, match=r"\w"):
        controller.configure(**changes)
    assert controller.config == FaultConfig()


def test_string_values_are_converted() -> None:
    config = FaultConfig().updated({"http_503_rate": "0.25", "retry_after_s": "3"})
    assert (config.http_503_rate, config.retry_after_s) == (0.25, 3)


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back
    assert [bucket.take(), bucket.take()] == [True, False]
    assert TokenBucket(rate=0, burst=0, clock=lambda: 0.0).take()
