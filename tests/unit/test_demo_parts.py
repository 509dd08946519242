"""The demo's arithmetic and verdicts, without a broker: percentiles, latencies, problems, args."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from consumer.demo import parse_args
from consumer.demo.report import DemoReport, summary_table
from consumer.demo.run import honour_lost_cancel, service_settings
from consumer.demo.traffic import TrafficStats
from consumer.demo.watch import Created, Observed, percentile
from consumer.settings import load_settings


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_latency_runs_from_the_last_item_made_ready_and_skips_unknown_items() -> None:
    seen = Observed()
    seen.created["inv-1"] = Created(at=110.0, kind="invoice", number="INV-1", item_ids=("a", "b"))
    seen.created["inv-2"] = Created(at=120.0, kind="credit", number="INV-2", item_ids=("c",))
    seen.created["inv-3"] = Created(at=130.0, kind="invoice", number="INV-3", item_ids=("x",))
    seen.pdf_ready["inv-1"] = 115.0
    ready = {"a": 100.0, "b": 104.0, "c": 119.5}

    to_created, to_pdf = seen.latencies(ready)

    assert to_created == [6.0, 0.5]  # inv-1 from b (the later item), inv-2 from c; inv-3 unknown
    assert to_pdf == [11.0]
    assert seen.credits() == 1


def report(**changes: object) -> DemoReport:
    base: dict[str, object] = {
        "prefix": "demo0",
        "orders": 2,
        "traffic": TrafficStats(orders_done=2, amqp_events=4, webhooks=8, duplicates=1),
        "invoices": 2,
        "credits": 1,
        "ledger_invoices": 2,
        "ledger_credits": 1,
        "created_matches_ledger": True,
        "double_invoiced_items": 0,
        "never_invoiced_items": 0,
        "pdfs_ready": 3,
        "pdfs_written": 3,
        "pdf_dir": Path("demo-output/pdfs"),
        "afosto_calls": {"order": 6, "mutation": 3, "invoice": 3},
        "to_created_s": [0.1, 0.2, 0.3],
        "to_pdf_s": [1.0, 2.0, 3.0],
        "repeated_output": 0,
    }
    base.update(changes)
    return DemoReport(**base)  # type: ignore[arg-type]


def test_a_clean_run_has_no_problems_and_says_ok() -> None:
    clean = report()
    assert clean.problems() == []
    assert clean.ok
    assert clean.calls_per_invoice == 4.0
    console = Console(record=True, width=120)
    console.print(summary_table(clean))
    text = console.export_text()
    assert "OK" in text
    assert "4.00" in text
    assert "200 ms / 300 ms" in text


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"finished": False}, "did not catch up"),
        ({"created_matches_ledger": False}, "differ from the invoices Afosto holds"),
        ({"double_invoiced_items": 2}, "2 items invoiced twice"),
        ({"never_invoiced_items": 1}, "1 items never invoiced"),
        ({"dead_letters": Counter({"pdf_timeout": 2})}, "2 dead letters"),
        ({"pdfs_ready": 2}, "not every invoice got invoice.pdf_ready"),
    ],
)
def test_each_failure_is_named(changes: dict[str, object], words: str) -> None:
    bad = report(**changes)
    assert not bad.ok
    assert any(words in p for p in bad.problems())
    console = Console(record=True, width=160)
    console.print(summary_table(bad))
    assert "NOT OK" in console.export_text()


def test_arguments() -> None:
    options = parse_args(["--orders", "25", "--faults", "none", "--no-webhooks", "--no-progress"])
    assert (options.orders, options.faults, options.webhooks, options.progress) == (
        25,
        "none",
        False,
        False,
    )
    assert parse_args([]).orders >= 300
    with pytest.raises(SystemExit):
        parse_args(["--orders", "0"])


def test_demo_settings_keep_the_operators_tuning_but_use_their_own_names() -> None:
    base = load_settings(
        {
            "INVOICER_WAIT_TIERS": "1s,2s,5s",
            "INVOICER_CONCURRENCY": "4",
            "INVOICER_QUEUE_PREFIX": "prod",
            "INVOICER_AFOSTO_API_KEY": "real-key",
            "INVOICER_CRASH_AT": "after_receive",
        },
        env_file=None,
    )
    demo = service_settings(base, "demo1234", "http://127.0.0.1:9/graphql", 18080)
    assert demo.amqp.wait_tiers == base.amqp.wait_tiers
    assert demo.pipeline.concurrency == 4
    assert demo.amqp.queue_prefix == "demo1234"
    assert demo.amqp.input_exchange == "demo1234.fulfilment"
    assert demo.amqp.output_exchange == "demo1234.invoicing"
    assert demo.afosto.url == "http://127.0.0.1:9/graphql"
    assert demo.afosto.api_key.get_secret_value() != "real-key"
    assert (demo.http.host, demo.http.port) == ("127.0.0.1", 18080)
    assert demo.testing.crash_at is None


async def test_a_cancel_that_a_library_swallowed_still_stops_the_demo() -> None:
    # Python 3.11's asyncio.wait_for returns its result when a cancel lands as it arrives;
    # the demo re-checks the task's pending cancel requests so that Ctrl-C sticks.
    reached: list[str] = []

    async def swallowing_rpc() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)

    async def demo_step() -> None:
        await swallowing_rpc()
        reached.append("after the swallowed cancel")
        honour_lost_cancel()
        reached.append("went on anyway")

    task = asyncio.create_task(demo_step())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reached == ["after the swallowed cancel"]


async def test_an_uncancelled_task_goes_on() -> None:
    honour_lost_cancel()  # nothing pending: no error
