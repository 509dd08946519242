"""bench/ratelimit.py at a tiny size: it runs end to end against the sandbox's token bucket and
its last stdout line is the JSON result with the expected keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "bench",
    "rate_limit_rps",
    "burst",
    "latency_ms",
    "concurrency",
    "events",
    "invoices",
    "complete",
    "warmup_s",
    "steady",
    "warmup",
    "whole_run",
    "fraction_of_rate",
    "rate_limited",
    "rate_limited_share",
    "steady_seconds",
    "target_met",
    "timeline",
    "calls_by_operation",
}
WINDOW_KEYS = {
    "from_s",
    "to_s",
    "seconds",
    "calls",
    "accepted_per_s",
    "fraction_of_rate",
    "rate_limited",
    "rate_limited_share",
}


def test_ratelimit_reports_the_share_of_the_rate_and_the_refusals(broker_url: str) -> None:
    # 60 events x ~3 calls at 20 calls/s: ~9 s of backlog, the first 2 s left out.
    argv = [sys.executable, "bench/ratelimit.py", "--events=60", "--rate=20", "--warmup=2"]
    argv += ["--latency-ms=0", "--concurrency=8", "--every=2", "--max-seconds=40"]
    argv += [f"--broker={broker_url}"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) == KEYS
    assert result["bench"] == "ratelimit"
    assert result["complete"] is True
    assert result["invoices"] == 60
    assert set(result["steady"]) == set(result["whole_run"]) == WINDOW_KEYS
    assert result["steady_seconds"] > 0
    # The bucket never lets more through than its rate plus what it had saved up (+ start-up pings).
    whole = result["whole_run"]
    assert whole["accepted_per_s"] * whole["seconds"] <= 20 * whole["seconds"] + 20 + 5
    # A saturating backlog starts unpaced: the bucket refuses some, and the ledger shows them.
    assert whole["rate_limited"] >= 1
    assert result["calls_by_operation"]["order"]["rate_limited"] >= 1 or (
        result["calls_by_operation"]["mutation"].get("rate_limited", 0) >= 1
    )
