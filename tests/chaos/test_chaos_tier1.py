"""Tier 1 of the reliability proof inside the test command: 100 orders, 400 events, two
service processes, every fault kind; fails on any of the nine invariants."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import cast

import pytest

from tests.chaos.broker import BrokerMode
from tests.chaos.harness import run
from tests.chaos.report import render
from tests.chaos.run import DEFAULT_BROKER_MODE
from tests.chaos.tiers import TIERS
from tests.conftest import CHAOS_REPORT

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


def progress(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(line, flush=True)


@pytest.mark.timeout(420)
async def test_tier1_keeps_every_invariant(
    broker_url: str,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    tier = TIERS[int(os.environ.get("INVOICER_CHAOS_TIER", "1"))]  # 0: the harness's smoke run
    if seed := os.environ.get("INVOICER_CHAOS_SEED"):
        tier = tier.with_seed(int(seed))
    mode = cast(BrokerMode, DEFAULT_BROKER_MODE)
    result = await run(tier, broker_mode=mode, log=lambda line: progress(capsys, line))
    report = render(result)
    record_property(CHAOS_REPORT, report)  # the figures belong in the CI log, pass or fail
    assert not result.failed, report
