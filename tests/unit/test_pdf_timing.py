"""The PDF delay estimate that schedules an invoice's first PDF check."""

from __future__ import annotations

import random
from datetime import timedelta

from handlers.ids import invoice_id_for
from handlers.issue import issue
from handlers.pdf import poll_pdf
from handlers.pdf_timing import DEFAULT_FIRST_CHECK, PdfDelayEstimator
from schemas.internal import Intent, PdfCheck
from tests.unit.fakes import CTX, T0, FakeAfosto, forwards, make_deps

S = timedelta(seconds=1)
TIERS = tuple(timedelta(seconds=s) for s in (1, 2, 5, 10, 30, 60))


def feed(est: PdfDelayEstimator, delay: float, age: float, times: int = 1) -> None:
    for _ in range(times):
        est.observe(age * S, ready=delay <= age)


def test_default_until_enough_was_seen() -> None:
    est = PdfDelayEstimator(TIERS)
    assert est.first_check() == DEFAULT_FIRST_CHECK
    feed(est, delay=0.5, age=1.0, times=19)
    assert est.first_check() == DEFAULT_FIRST_CHECK  # 19 < MIN_EVIDENCE


def simulate(est: PdfDelayEstimator, delays: list[float | None]) -> None:
    """Invoices whose PDFs take `delays` (None: never), looked at as issue and poll_pdf do."""
    for delay in delays:
        age = est.first_check().total_seconds()
        step, check = 2.0, 1
        while check <= 8:
            # a look lands a little late; only a first look may report a miss (poll_pdf)
            ready = delay is not None and delay <= age + 0.05
            if ready or check == 1:
                est.observe(age * S, ready=ready)
            if ready:
                break
            age, step, check = age + step, step * 2, check + 1


def test_learns_the_tier_that_finds_most_pdfs_in_one_look() -> None:
    """PDFs after U(0.2, 2) s: a look at 1 s finds about half, at 2 s all, so 2 s it is."""
    rng = random.Random(3)
    est = PdfDelayEstimator(TIERS)
    simulate(est, [rng.uniform(0.2, 2.0) for _ in range(300)])
    picks = [est.first_check() for _ in range(80)]
    assert picks.count(2 * S) == 70  # every 8th look goes one tier lower to keep learning
    assert picks.count(1 * S) == 10


def test_pdfs_that_never_appear_do_not_push_every_first_look_late() -> None:
    rng = random.Random(4)
    est = PdfDelayEstimator(TIERS)
    delays = [None if rng.random() < 0.05 else rng.uniform(0.2, 2.0) for _ in range(600)]
    simulate(est, delays)
    assert est.first_check() == 2 * S


def test_climbs_one_tier_at_a_time_to_slow_pdfs() -> None:
    est = PdfDelayEstimator(TIERS)
    simulate(est, [7.0] * 400)  # first looks at 1 s, 2 s, 5 s miss; 10 s finds them
    picks = [est.first_check() for _ in range(80)]
    assert picks.count(10 * S) >= 70  # the rest re-check that 5 s is still too early
    assert set(picks) <= {5 * S, 10 * S}


def test_comes_down_again_when_pdfs_get_faster() -> None:
    est = PdfDelayEstimator(TIERS)
    feed(est, delay=7.0, age=10.0, times=40)  # slow renderer: 10 s tier
    feed(est, delay=7.0, age=5.0, times=40)
    assert est.first_check() == 10 * S
    for _ in range(1500):  # the renderer got fast; only the exploring looks can tell
        age = est.first_check().total_seconds()
        est.observe(age * S, ready=age >= 0.5)
    assert est.first_check() == 1 * S


def test_pdfs_slower_than_every_tier_are_looked_at_late_not_early() -> None:
    est = PdfDelayEstimator(TIERS)
    feed(est, delay=600, age=61.0, times=30)
    assert est.first_check() == 30 * S  # bounded: never later than MAX_FIRST_CHECK


def test_evidence_counts_only_what_a_look_proves() -> None:
    est = PdfDelayEstimator(TIERS)
    est.observe(1.5 * S, ready=True)  # a look at 2 s would have found it; at 1 s, who knows
    est.observe(1.5 * S, ready=False)  # a look at 1 s would not have; at 2 s, who knows
    assert est.evidence(2 * S) == (1, 0)
    assert est.evidence(1 * S) == (0, 1)


def new_intent(api: FakeAfosto) -> Intent:
    api.add_order("o1", ["a", "b"])
    return Intent(
        invoice_id=invoice_id_for(["a", "b"]),
        order_id="o1",
        customer_id="cust-1",
        item_ids=("a", "b"),
        correlation_id="ev-1",
        event_type="order.shipped",
        first_seen=T0,
    )


async def test_issue_schedules_the_first_check_from_the_estimate() -> None:
    api = FakeAfosto()
    est = PdfDelayEstimator(TIERS)
    feed(est, delay=1.5, age=2.0, times=30)
    feed(est, delay=1.5, age=1.0, times=30)
    deps = make_deps(api, pdf_timing=est)
    intent = new_intent(api)
    out = await issue(intent, deps, CTX)
    (check,) = forwards(out[1:])
    assert check.delay == 2 * S
    assert isinstance(check.message, PdfCheck)
    assert check.message.seen_at == api.clock.now()


async def test_poll_pdf_feeds_the_estimate_with_scheduled_ages_on_our_clock() -> None:
    api = FakeAfosto()
    est = PdfDelayEstimator(TIERS)
    deps = make_deps(api, pdf_timing=est)
    intent = new_intent(api)
    (fwd,) = forwards((await issue(intent, deps, CTX))[1:])
    assert isinstance(fwd.message, PdfCheck)
    afosto_behind = fwd.message.created_at - timedelta(minutes=10)  # clock skew
    skewed = fwd.message.model_copy(update={"created_at": afosto_behind})
    api.clock.advance(timedelta(seconds=2))  # landed late (a backlog): the PDF takes 3 s
    await poll_pdf(skewed, deps, CTX)
    assert est.evidence(DEFAULT_FIRST_CHECK) == (0, 1)  # scheduled at 1 s, not 2 s or 10 min
    assert est.evidence(2 * S) == (0, 0)


async def test_poll_pdf_reports_misses_of_first_looks_only() -> None:
    api = FakeAfosto()  # the PDF appears 3 s after creation
    est = PdfDelayEstimator(TIERS)
    deps = make_deps(api, pdf_timing=est)
    (first,) = forwards((await issue(new_intent(api), deps, CTX))[1:])
    assert isinstance(first.message, PdfCheck)
    api.clock.advance(timedelta(seconds=1))
    (second,) = forwards(await poll_pdf(first.message, deps, CTX))  # miss, first look
    assert isinstance(second.message, PdfCheck)
    api.clock.advance(timedelta(seconds=1))
    (third,) = forwards(await poll_pdf(second.message, deps, CTX))  # miss, not recorded
    assert isinstance(third.message, PdfCheck)
    api.clock.advance(timedelta(seconds=4))
    await poll_pdf(third.message, deps, CTX)  # found; this look was scheduled for age 6 s
    assert est.evidence(1 * S) == (0, 1)
    assert est.evidence(5 * S) == (0, 0)
    assert est.evidence(10 * S) == (1, 0)
