"""Rate limits against a real HTTP server: Retry-After, the shared limiter, the retry budget;
plus per-call metrics and the circuit feed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from consumer.afosto import SharedLimiter
from consumer.afosto.errors import parse_retry_after
from consumer.metrics import Metrics
from handlers.errors import Conflict, RateLimited
from tests.unit.afosto_server import (
    ORDER,
    answer,
    client_for,
    gql_error,
    slow,
)


async def test_rate_limited_in_200_backs_off_and_slows_everyone() -> None:
    replies = (gql_error("RATE_LIMITED"), answer({"data": {"order": ORDER}}))
    async with client_for(*replies, concurrency=8) as (client, script, sleeps):
        assert await client.order("o1") is not None
        # nothing answered yet, so nothing to pace from: everyone pauses, as Afosto advises
        assert client.limiter.pause_remaining > 0.5
    assert len(script.requests) == 2
    assert sleeps.calls[0] >= 0.9  # Afosto's advice: 1 s first


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_429_retry_after_is_honoured_in_both_forms(form: str) -> None:
    when = datetime.now(UTC) + timedelta(seconds=5)
    value = "5" if form == "seconds" else format_datetime(when, usegmt=True)
    replies = (
        answer({}, status=429, headers={"Retry-After": value}),
        answer({"data": {"order": ORDER}}),
    )
    async with client_for(*replies) as (client, script, sleeps):
        assert await client.order("o1") is not None
    assert len(script.requests) == 2
    assert 3.5 <= max(sleeps.calls) <= 5.0


async def test_retry_after_beyond_the_budget_is_left_to_the_broker() -> None:
    reply = answer({}, status=429, headers={"Retry-After": "120"})
    async with client_for(reply, retry_budget=10.0) as (client, script, _):
        with pytest.raises(RateLimited) as err:
            await client.order("o1")
        # every other call now waits out the pause before it is sent
        assert client.limiter.pause_remaining > 50
    assert err.value.retry_after == 120
    assert len(script.requests) == 1


async def test_pause_applies_to_calls_that_were_never_limited() -> None:
    replies = (
        answer({}, status=429, headers={"Retry-After": "7"}),
        answer({"data": {"order": ORDER}}),
    )
    async with client_for(*replies, retry_budget=5.0) as (client, _, sleeps):
        with pytest.raises(RateLimited):
            await client.order("o1")
        sleeps.calls.clear()
        assert await client.invoice("inv-1") is None  # a different call, same limiter
    assert sleeps.calls
    assert 6 <= sleeps.calls[0] <= 7


async def test_calls_are_counted_by_operation_and_outcome_and_timed() -> None:
    metrics = Metrics()
    replies = (gql_error("NOT_FOUND"), answer({}, status=503), answer({"data": {"order": ORDER}}))
    async with client_for(*replies, metrics=metrics) as (client, _, _):
        await client.invoice("x")
        await client.order("o1")
    value = metrics.registry.get_sample_value
    assert (
        value("invoicer_afosto_calls_total", {"operation": "invoice", "outcome": "not_found"}) == 1
    )
    assert value("invoicer_afosto_calls_total", {"operation": "order", "outcome": "transient"}) == 1
    assert value("invoicer_afosto_calls_total", {"operation": "order", "outcome": "ok"}) == 1
    assert value("invoicer_afosto_call_duration_seconds_count", {"operation": "order"}) == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 05 Jan 2026 09:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 05 Jan 2026 08:00:00 GMT", now) == 0.0


async def test_every_round_trip_reports_whether_afosto_answered() -> None:
    results: list[bool] = []
    replies = (
        answer({}, status=502),
        gql_error("NOT_FOUND"),
        gql_error("VALIDATION_ERROR", field="items"),
        slow(1.0, answer({})),
    )
    async with client_for(*replies, on_result=results.append, timeout=0.3) as (client, _, _):
        assert await client.order("o1") is None  # 502, then NOT_FOUND
        with pytest.raises(Conflict):
            await client.invoice_items(["a"], "i")
        with pytest.raises(Conflict):
            await client.invoice_items(["a"], "i")  # timed out: unknown outcome
    assert results == [False, True, True, False]


async def test_a_refusal_after_answers_paces_every_call_of_the_client() -> None:
    replies = (
        answer({"data": {"order": ORDER}}),
        gql_error("RATE_LIMITED"),
        answer({"data": {"order": ORDER}}),
    )
    async with client_for(*replies, concurrency=8) as (client, script, _):
        assert await client.order("o1") is not None
        assert client.limiter.rate is None  # not paced until Afosto refuses
        assert await client.order("o2") is not None  # refused once, retried at the new pace
        assert client.limiter.rate is not None
        assert client.limiter.pause_remaining == 0  # one refusal slows calls, stops none
    assert len(script.requests) == 3


async def test_answered_errors_teach_the_limiter_the_rate_too() -> None:
    """NOT_FOUND passed the rate limit like any answer: a refusal after it paces, not pauses."""
    replies = (
        gql_error("NOT_FOUND"),
        gql_error("NOT_FOUND"),
        gql_error("RATE_LIMITED"),
        answer({"data": {"order": ORDER}}),
    )
    async with client_for(*replies, concurrency=8) as (client, script, sleeps):
        assert await client.order("o1") is None
        assert await client.order("o2") is None
        assert await client.order("o3") is not None
        assert client.limiter.rate is not None
        assert client.limiter.pause_remaining == 0
    assert len(script.requests) == 4
    assert not [s for s in sleeps.calls if s >= 0.9]  # no "nothing answered yet" pause


async def test_limiter_never_has_more_calls_in_flight_than_its_concurrency() -> None:
    limiter = SharedLimiter(concurrency=3)
    inside, peak = 0, 0

    async def call() -> None:
        nonlocal inside, peak
        async with limiter.slot():
            inside += 1
            peak = max(peak, inside)
            for _ in range(3):
                await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(call() for _ in range(10)))
    assert (peak, limiter.limit) == (3, 3)


async def test_a_call_queued_for_a_slot_waits_out_a_rate_limit_that_came_meanwhile() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = SharedLimiter(concurrency=1, sleep=sleep, monotonic=lambda: 100.0)
    release = asyncio.Event()

    async def holder() -> None:
        async with limiter.slot():
            await release.wait()

    async def queued() -> None:
        async with limiter.slot():
            pass

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(queued())
    await asyncio.sleep(0)
    limiter.rate_limited(3.0)  # a proxy refused the holder's call for rate
    release.set()
    await asyncio.gather(held, waiting)
    assert slept == [3.0]
