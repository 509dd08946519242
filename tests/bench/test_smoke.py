"""bench-core's scripts at a tiny size: each runs end to end and its last stdout line is the
JSON result with the expected keys; the stand-in answers what the service's client parses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bench.children import standin_process
from consumer.afosto import AfostoClient
from handlers.errors import Conflict
from handlers.ids import invoice_id_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_KEYS = {
    "scenario",
    "mode",
    "orders",
    "deliveries",
    "complete",
    "created",
    "ready",
    "seconds_to_created",
    "seconds_to_ready",
    "created_per_s",
    "ready_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "invoices",
    "calls_per_invoice",
    "calls_per_invoice_by_op",
    "calls",
    "double_invoiced",
    "cpu_s_per_1000",
    "cpu_s_per_1000_by_process",
    "peak_rss_mb",
    "api_ms",
    "p99_bound_ms",
    "p99_bound_from",
}


def _run(module: str, *args: str, broker_url: str, timeout: float = 60) -> dict[str, Any]:
    argv = [sys.executable, "-m", module, *args, f"--broker={broker_url}"]
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    return result


def test_ceiling_reports_the_pattern_and_the_relay(broker_url: str) -> None:
    result = _run("bench.ceiling", "--events=60", "--relay=200", broker_url=broker_url)
    assert result["bench"] == "ceiling"
    assert result["pattern"]["complete"] is True
    assert result["pattern"]["events"] == 60
    assert result["events_per_s"] > 0
    assert result["relay"]["messages"] == 200
    assert result["relay_msg_per_s"] > 0


def test_pipeline_backlog_against_standin_and_sandbox(broker_url: str) -> None:
    result = _run(
        "bench.pipeline",
        "--events=20",
        "--ceiling-events=40",
        "--scenarios=standin,sandbox-0ms",
        "--duplicates=0.5",
        "--wait-tiers=100ms,250ms,500ms,1s",
        "--processes=2",  # replicas competing on the same queues
        broker_url=broker_url,
    )
    assert result["bench"] == "pipeline"
    assert result["processes"] == 2
    assert result["ceiling"]["complete"] is True
    assert set(result["scenarios"]) == {"standin", "sandbox-0ms"}
    assert set(result["ratio_to_ceiling"]) == {"standin", "sandbox-0ms"}
    for scenario in result["scenarios"].values():
        assert set(scenario) == SCENARIO_KEYS
        assert scenario["complete"] is True
        assert scenario["deliveries"] == 30  # 20 events and 10 duplicate deliveries
        assert scenario["created"] == scenario["ready"] == scenario["invoices"] == 20
        assert scenario["double_invoiced"] == 0
        # The broker's share is there only where RabbitMQ runs on this machine (here it does).
        assert set(scenario["cpu_s_per_1000_by_process"]) == {"service", "api", "broker"}
        # At this size two processes may each spend less than a clock tick: no "> 0" here.
        assert scenario["cpu_s_per_1000_by_process"]["service"] == scenario["cpu_s_per_1000"]
        # Every order was queried and invoiced once at least; duplicates may add queries.
        assert scenario["calls_per_invoice_by_op"]["mutation"] >= 1
        assert scenario["calls_per_invoice_by_op"]["order"] >= 1
        assert scenario["peak_rss_mb"] > 0


def test_pipeline_rate_mode_prints_the_p99_bound(broker_url: str) -> None:
    result = _run(
        "bench.pipeline",
        "--events=20",
        "--rate=40",
        "--ceiling-events=0",
        "--scenarios=standin",
        broker_url=broker_url,
    )
    (scenario,) = result["scenarios"].values()
    assert scenario["mode"] == "rate 40/s"
    assert scenario["complete"] is True
    assert scenario["p99_bound_ms"] is not None
    assert result["ceiling"] is None


def test_backlog_reports_rss_and_drain_rate(broker_url: str) -> None:
    result = _run(
        "bench.backlog", "--triggers=400", "--orders=20", "--within=40", broker_url=broker_url
    )
    assert result["bench"] == "backlog"
    assert result["complete"] is True
    assert result["drained"] == 400
    assert result["invoices"] == 20
    # Every trigger reads the order, alone or sharing a read with others for the same order.
    assert 20 <= result["order_calls"] <= 400
    assert result["order_calls_per_trigger"] == round(result["order_calls"] / 400, 3)
    assert result["rss_peak_mb"] >= result["rss_start_mb"] > 0
    assert {"rss_end_mb", "rss_growth_mb", "drain_per_s", "publish_s"} <= set(result)


async def test_standin_speaks_what_the_service_client_parses() -> None:
    async with standin_process(pdf_delay_s=30) as api:
        (order,) = await api.control("POST", "orders", {"count": 1, "items": 3})
        async with AfostoClient(api.graphql_url, SecretStr(api.api_key)) as client:
            parsed = await client.order(order["id"])
            assert parsed is not None
            assert parsed.invoiceable_ids == tuple(sorted(order["item_ids"]))
            invoice_id = invoice_id_for(parsed.invoiceable_ids)
            invoice = await client.invoice_items(parsed.invoiceable_ids, invoice_id)
            assert invoice.id == invoice_id
            assert invoice.item_ids == parsed.invoiceable_ids
            assert invoice.pdf_url is None  # 30 s away
            # The same invoice again is refused, as Afosto does; nothing is left to invoice.
            with pytest.raises(Conflict):
                await client.invoice_items(parsed.invoiceable_ids, invoice_id)
            again = await client.order(order["id"])
            assert again is not None
            assert again.invoiceable_ids == ()
            assert again.invoiced_ids == frozenset(order["item_ids"])
            assert await client.invoice("no-such-invoice") is None
        async with AfostoClient(api.graphql_url, SecretStr("wrong-key-12345")) as client:
            with pytest.raises(Exception, match="UNAUTHORIZED"):
                await client.order(order["id"])
        ledger = await api.control("GET", "ledger")
    assert ledger["invoices"] == 1
    assert ledger["invoiced_more_than_once"] == {}
    assert ledger["calls"]["mutation"] == {"ok": 1, "validation_error": 1}
