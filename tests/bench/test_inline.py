"""bench/inline.py at a tiny size: the JSON line has every figure; each order got both events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "inline.py"
KEYS = {
    "bench",
    "orders",
    "prefetch",
    "complete",
    "created",
    "pdf_ready",
    "events_per_s_created",
    "events_per_s_pdf_ready",
    "event_to_created_ms",
    "afosto_calls_per_invoice",
    "afosto_calls",
    "invoices",
    "items_invoiced_twice",
    "cpu_s_per_1000_events",
    "peak_rss_mb",
    "deliveries_held",
    "mean_hold_s",
    "prefetch_bound_per_s",
    "latency_ms",
    "pdf_delay_s",
    "poll_interval_s",
    "seed",
}


def test_tiny_run_reports_every_figure_and_both_events_per_order(broker_url: str) -> None:
    orders = 6
    argv = [sys.executable, str(SCRIPT), f"--orders={orders}", "--prefetch=4", "--latency-ms=5"]
    # PDFs late enough that no stall of a busy machine lets the mutation's answer carry one.
    argv += ["--pdf-min-s=0.3", "--pdf-max-s=0.5", "--poll-interval=0.1", f"--broker={broker_url}"]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) == KEYS
    assert set(result["event_to_created_ms"]) == {"p50", "p95", "p99"}
    assert result["complete"] is True
    assert result["created"] == result["pdf_ready"] == result["invoices"] == orders
    assert result["items_invoiced_twice"] == 0
    # One order query and one mutation per invoice, then at least one poll for the PDF.
    calls = result["afosto_calls"]
    assert calls["order"] == calls["mutation"] == orders
    assert calls["invoice"] >= orders
    assert result["events_per_s_pdf_ready"] > 0
    assert result["cpu_s_per_1000_events"] > 0
    assert result["deliveries_held"] == orders
    # Each delivery is held for a query, a mutation, at least one poll interval and a poll.
    assert result["mean_hold_s"] >= 0.1


def test_compare_runs_the_service_on_the_same_settings_and_prints_the_ratio(
    broker_url: str,
) -> None:
    argv = [sys.executable, str(SCRIPT), "--orders=4", "--prefetch=4", "--latency-ms=5"]
    argv += ["--pdf-min-s=0.05", "--pdf-max-s=0.2", "--poll-interval=0.1", f"--broker={broker_url}"]
    argv += ["--compare", "--compare-events=4"]
    env = {**os.environ, "BENCH_AMQP_URL": broker_url}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    versus = result["compare"]
    service = versus["service"]
    assert service["complete"] is True
    assert service["orders"] == service["created"] == service["ready"] == 4
    assert service["scenario"] == "sandbox-5ms"
    expected = round(service["ready_per_s"] / result["events_per_s_pdf_ready"], 2)
    assert versus["ratio_pdf_ready_per_s"] == expected
    assert "service/inline" in done.stdout
