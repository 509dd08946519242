"""Tier 1 of the reliability proof inside the test command: 100 orders, 400 events, two
service processes, every fault kind; fails on any of the nine invariants."""

from __future__ import annotations

import os
from typing import cast

import pytest

from tests.chaos.broker import BrokerMode
from tests.chaos.harness import run
from tests.chaos.report import render
from tests.chaos.run import DEFAULT_BROKER_MODE
from tests.chaos.tiers import TIERS

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


@pytest.mark.timeout(420)
async def test_tier1_keeps_every_invariant(
    broker_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tier = TIERS[1]
    if seed := os.environ.get("INVOICER_CHAOS_SEED"):
        tier = tier.with_seed(int(seed))
    result = await run(tier, broker_mode=cast(BrokerMode, DEFAULT_BROKER_MODE), log=lambda _: None)
    report = render(result)
    with capsys.disabled():  # the figures belong in the CI log, pass or fail
        print("\n" + report)
    assert not result.failed, report
