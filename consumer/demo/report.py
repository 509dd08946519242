"""What the demo shows: live progress while it runs, and the summary table at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from consumer.demo.traffic import TrafficStats
from consumer.demo.watch import Observed, percentile


@dataclass
class DemoReport:
    """The demo's outcome, as numbers a test can assert on."""

    prefix: str  # queue prefix of the run (its queues are gone once the demo returns)
    orders: int
    traffic: TrafficStats
    invoices: int  # invoice.created seen, kind invoice
    credits: int  # invoice.created seen, kind credit
    ledger_invoices: int  # invoices the sandbox (Afosto) holds
    ledger_credits: int
    created_matches_ledger: bool  # the same invoice ids on both sides
    double_invoiced_items: int
    never_invoiced_items: int
    pdfs_ready: int
    pdfs_written: int
    pdf_dir: Path
    afosto_calls: dict[str, int]
    to_created_s: list[float]
    to_pdf_s: list[float]
    repeated_output: int
    dead_letters: Counter[str] = field(default_factory=Counter)
    leftover_messages: int = 0
    seconds: float = 0.0
    finished: bool = True  # everything arrived before the deadline

    @property
    def calls_per_invoice(self) -> float:
        total = self.invoices + self.credits
        return sum(self.afosto_calls.values()) / total if total else 0.0

    def problems(self) -> list[str]:
        """What went wrong, in words; empty when the run is a success."""
        found = []
        if not self.finished:
            found.append("the pipeline did not catch up before the timeout")
        if not self.created_matches_ledger:
            found.append("invoice.created events differ from the invoices Afosto holds")
        if self.double_invoiced_items:
            found.append(f"{self.double_invoiced_items} items invoiced twice")
        if self.never_invoiced_items:
            found.append(f"{self.never_invoiced_items} items never invoiced")
        if self.dead_letters:
            found.append(f"{sum(self.dead_letters.values())} dead letters")
        if self.pdfs_ready != self.invoices + self.credits:
            found.append("not every invoice got invoice.pdf_ready")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems()


class LiveView:
    """Progress bars fed from the simulator's and the taps' counters."""

    def __init__(self, console: Console, orders: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._orders = self.progress.add_task("orders simulated", total=orders)
        self._created = self.progress.add_task("invoices created", total=None)
        self._pdfs = self.progress.add_task("PDFs ready", total=None)
        self.status = Text()

    def renderable(self) -> Group:
        return Group(self.progress, self.status)

    def update(self, traffic: TrafficStats, seen: Observed, afosto_total: int, dead: int) -> None:
        created = len(seen.created)
        self.progress.update(self._orders, completed=traffic.orders_done)
        self.progress.update(self._created, completed=created, total=max(afosto_total, created))
        self.progress.update(self._pdfs, completed=len(seen.pdf_ready), total=max(created, 1))
        self.status = Text.assemble(
            ("events ", "dim"),
            f"{traffic.amqp_events} amqp + {traffic.webhooks} webhooks + "
            f"{traffic.duplicates} duplicates",
            ("   dead letters ", "dim"),
            (str(dead), "bold red" if dead else ""),
        )


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:,.0f} ms"


def summary_table(report: DemoReport) -> Table:
    """The end-of-demo table: counts, Afosto cost, latencies, dead letters."""
    t = report.traffic
    table = Table(title="afosto-invoicer demo", show_header=True, header_style="bold")
    table.add_column("what", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("detail", style="dim")
    table.add_row("orders", str(report.orders), f"{t.partial_shipments} shipped in two parts")
    table.add_row(
        "events sent",
        str(t.amqp_events + t.webhooks + t.duplicates),
        f"{t.amqp_events} on AMQP, {t.webhooks} webhooks, {t.duplicates} duplicates",
    )
    table.add_row("returns approved", str(t.approvals), f"{t.returns} returns")
    match = "= ledger" if report.created_matches_ledger else "≠ ledger!"
    table.add_row(
        "invoices created",
        str(report.invoices),
        f"Afosto holds {report.ledger_invoices} ({match})",
    )
    table.add_row("credit invoices", str(report.credits), f"Afosto holds {report.ledger_credits}")
    table.add_row(
        "PDFs ready",
        str(report.pdfs_ready),
        f"{report.pdfs_written} written to {report.pdf_dir}",
    )
    calls = ", ".join(f"{op} {n}" for op, n in sorted(report.afosto_calls.items()))
    table.add_row("Afosto calls / invoice", f"{report.calls_per_invoice:.2f}", calls)
    for label, values in (
        ("→ invoice.created", report.to_created_s),
        ("→ invoice.pdf_ready", report.to_pdf_s),
    ):
        table.add_row(
            f"{label} p50/p95",
            f"{_ms(percentile(values, 50))} / {_ms(percentile(values, 95))}",
            f"from the shipment or return approval; {len(values)} invoices",
        )
    dead = ", ".join(f"{r} {n}" for r, n in report.dead_letters.most_common()) or "none"
    table.add_row("dead letters", str(sum(report.dead_letters.values())), dead)
    table.add_row(
        "items twice / never",
        f"{report.double_invoiced_items} / {report.never_invoiced_items}",
        f"{report.repeated_output} repeated output events (dedupe on event_id)",
    )
    problems = report.problems()
    verdict = "[red]NOT OK[/]" if problems else "[green]OK[/]"
    detail = "; ".join(problems) or "every item invoiced exactly once, every PDF ready"
    table.add_row("result", verdict, f"{detail} ({report.seconds:.0f} s)")
    return table
