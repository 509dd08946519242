"""`invoicer demo` end to end on the real broker: small runs, real sandbox, nothing left behind."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest
from rich.console import Console

from consumer.amqp.topology import build
from consumer.demo import DemoOptions, main, run_demo
from consumer.demo.broker import leftovers
from consumer.demo.run import Run
from consumer.settings import load_settings

pytestmark = pytest.mark.integration


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


async def test_small_demo_invoices_exactly_the_ledger_and_cleans_up(
    broker_url: str, tmp_path: Path
) -> None:
    options = DemoOptions(
        orders=20, output=tmp_path, progress=False, timeout=120, seed=3, amqp_url=broker_url
    )
    report = await run_demo(options, quiet())

    assert report.finished, "the pipeline did not catch up before the deadline"
    assert report.orders == 20
    assert report.traffic.partial_shipments > 0
    assert report.traffic.duplicates > 0
    assert report.invoices > 0
    assert report.credits > 0
    assert report.created_matches_ledger
    assert (report.invoices, report.credits) == (report.ledger_invoices, report.ledger_credits)
    assert report.double_invoiced_items == 0
    assert report.never_invoiced_items == 0
    assert not report.dead_letters
    assert report.pdfs_ready == report.invoices + report.credits
    pdfs = sorted((tmp_path / "pdfs").glob("*.pdf"))
    assert len(pdfs) == report.pdfs_written == report.pdfs_ready
    assert all(p.read_bytes().startswith(b"%PDF") for p in pdfs)
    assert len(report.to_created_s) == report.invoices + report.credits
    assert all(0 <= s < 120 for s in report.to_created_s + report.to_pdf_s)
    assert report.calls_per_invoice >= 2  # at least one order query and one invoiceItems
    assert report.problems() == []

    topology = build(load_settings({"INVOICER_QUEUE_PREFIX": report.prefix}, env_file=None).amqp)
    assert await leftovers(broker_url, topology) == []


async def test_cancelled_demo_still_removes_its_queues(broker_url: str, tmp_path: Path) -> None:
    """Ctrl-C cancels the main task; the demo must delete what it declared on the way out."""
    options = DemoOptions(orders=200, output=tmp_path, progress=False, timeout=120)
    base = load_settings({"INVOICER_AMQP_URL": broker_url}, env_file=None)
    run = Run(options, base, quiet())
    task = asyncio.create_task(run.execute())
    # Wait until the service has declared every queue: a cancel in the middle of declaring
    # is another test (and by time, not by count: a loaded machine starts slowly).
    expected = sorted(q.name for q in run.topology.queues)
    deadline = time.monotonic() + 60
    while await leftovers(broker_url, run.topology) != expected:
        assert not task.done(), f"the demo ended early: {task}"
        assert time.monotonic() < deadline, "the demo never declared all its queues"
        await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    left = await leftovers(broker_url, run.topology)
    assert left == [], f"left on the broker after the cancel: {left}"


def test_demo_fails_fast_with_a_hint_when_the_broker_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "amqp://guest:guest@127.0.0.1:1/"
    code = main(["--amqp-url", url, "--no-progress", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "RabbitMQ is not reachable at amqp://guest:***@127.0.0.1:1/" in err
    assert "rabbitmq-server -detached" in err


def test_demo_names_refused_credentials(
    broker_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = urlsplit(broker_url)
    wrong = urlunsplit(
        parts._replace(
            netloc=f"nobody-{uuid4().hex[:6]}:wrong@{parts.hostname}:{parts.port or 5672}"
        )
    )
    code = main(["--amqp-url", wrong, "--no-progress", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "refused the user name or password" in err
    assert ":wrong@" not in err
