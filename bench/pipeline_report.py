"""What one bench/pipeline.py scenario run measured (ScenarioResult, computed from the capture,
the API's ledger, /proc and the service's /metrics) and how the bench reports it: the table, the
ratio to the ceiling, the p99 bound and the JSON line."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.capture import Capture
from bench.ceiling import PatternResult
from bench.pipeline_scenarios import Scenario
from bench.report import emit_json, ms, percentile, print_table


@dataclass
class ScenarioResult:
    scenario: str
    mode: str  # "backlog" | "rate <R>/s"
    orders: int
    deliveries: int  # events published, duplicates included
    complete: bool
    created: int
    ready: int
    seconds_to_created: float
    seconds_to_ready: float
    created_per_s: float
    ready_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    invoices: int
    calls_per_invoice: float
    calls_per_invoice_by_op: dict[str, float]
    calls: dict[str, dict[str, int]]
    double_invoiced: int
    cpu_s_per_1000: float
    peak_rss_mb: float
    cpu_s_per_1000_by_process: dict[str, float] = field(default_factory=dict)
    api_ms: dict[str, float] = field(default_factory=dict)  # mean client-side call time
    p99_bound_ms: float | None = None  # rate mode: 2 × (query + mutation) + 150 ms
    p99_bound_from: str | None = None  # "service metrics" | "configured latency"


def scenario_result(
    scenario: Scenario,
    rate: float | None,
    order_ids: list[str],
    messages: list[tuple[str, bytes, str]],
    cap: Capture,
    sent: dict[str, float],
    ledger: dict[str, Any],
    latency: dict[str, tuple[float, float]],
    *,
    complete: bool,
    started: float,
    end_created: float,
    end_ready: float,
    cpu_used: dict[str, float],
    peak_rss: int,
) -> ScenarioResult:
    """The figures of one scenario run, from what `run_scenario` collected."""
    latencies = [t - sent[o] for o, t in cap.created.items() if o in sent]
    calls: dict[str, dict[str, int]] = ledger.get("calls", {})
    invoices = int(ledger.get("invoices", 0))
    per_op = {op: sum(outcomes.values()) for op, outcomes in calls.items()}
    api_ms = {op: round(s / c * 1000, 2) for op, (s, c) in latency.items() if c}
    bound, bound_from = None, None
    if rate is not None:
        measured = "order" in api_ms and "invoice_items" in api_ms
        bound_from = "service metrics" if measured else "configured latency"
        # A query and a mutation per event, as the service itself timed them; else configured.
        query = api_ms.get("order", scenario.latency_ms)
        mutation = api_ms.get("invoice_items", scenario.latency_ms)
        bound = round(2 * (query + mutation) + 150, 1)
    seconds_created, seconds_ready = end_created - started, end_ready - started

    def per_1000(seconds: float) -> float:
        return round(seconds / len(messages) * 1000, 3) if messages else 0.0

    return ScenarioResult(
        scenario=scenario.name,
        mode="backlog" if rate is None else f"rate {rate:g}/s",
        orders=len(order_ids),
        deliveries=len(messages),
        complete=complete,
        created=len(cap.created),
        ready=len(cap.ready),
        seconds_to_created=round(seconds_created, 3),
        seconds_to_ready=round(seconds_ready, 3),
        created_per_s=round(len(cap.created) / seconds_created, 1) if seconds_created > 0 else 0.0,
        ready_per_s=round(len(cap.ready) / seconds_ready, 1) if seconds_ready > 0 else 0.0,
        p50_ms=ms(percentile(latencies, 50)),
        p95_ms=ms(percentile(latencies, 95)),
        p99_ms=ms(percentile(latencies, 99)),
        invoices=invoices,
        calls_per_invoice=round(sum(per_op.values()) / invoices, 3) if invoices else 0.0,
        calls_per_invoice_by_op={
            op: round(n / invoices, 3) if invoices else 0.0 for op, n in sorted(per_op.items())
        },
        calls=calls,
        double_invoiced=len(ledger.get("invoiced_more_than_once", {})),
        cpu_s_per_1000=per_1000(cpu_used["service"]),
        # Where the two cores went: the broker's share includes anything else on it.
        cpu_s_per_1000_by_process={name: per_1000(used) for name, used in cpu_used.items()},
        peak_rss_mb=round(peak_rss / 2**20, 1),
        api_ms=api_ms,
        p99_bound_ms=bound,
        p99_bound_from=bound_from,
    )


HEADERS = (
    "scenario",
    "mode",
    "events",
    "created/s",
    "ready/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "calls/inv",
    "CPU s/1k svc/api/mq",
    "RSS MB",
    "dbl",
)


def _row(r: ScenarioResult) -> list[object]:
    p99 = f"{r.p99_ms:,.1f}" + (f" (≤{r.p99_bound_ms:g})" if r.p99_bound_ms is not None else "")
    return [
        r.scenario + ("" if r.complete else " INCOMPLETE"),
        r.mode,
        r.deliveries,
        r.created_per_s,
        r.ready_per_s,
        r.p50_ms,
        r.p95_ms,
        p99,
        r.calls_per_invoice,
        "/".join(
            f"{r.cpu_s_per_1000_by_process[p]:.2f}" if p in r.cpu_s_per_1000_by_process else "-"
            for p in ("service", "api", "broker")
        ),
        r.peak_rss_mb,
        r.double_invoiced,
    ]


def _key(r: ScenarioResult) -> str:
    return r.scenario if r.mode == "backlog" else f"{r.scenario} {r.mode}"


def report(
    args: argparse.Namespace,
    results: list[ScenarioResult],
    ceiling_result: PatternResult | None,
    wall: float,
) -> None:
    """The run's settings, the table, the ratios to the ceiling, calls and the p99 bound per
    scenario, and the JSON line; `wall`: the monotonic time the run started."""
    print(
        f"service: {args.processes} process(es), concurrency {args.concurrency} each, "
        f"prefetch {args.prefetch or 'service default'}, seed {args.seed}, "
        f"duplicates {args.duplicates:g}, wait tiers {args.wait_tiers or 'service default'}, "
        f"log level {args.log_level}"
    )
    print_table(
        "pipeline (event→created latency from each event's publish)",
        HEADERS,
        [_row(r) for r in results],
    )
    ratios: dict[str, float | None] = {}
    if ceiling_result is not None:
        c = ceiling_result.events_per_s
        print(f"\nceiling (bench/ceiling.py pattern, same run): {c:,.1f} events/s to pdf_ready")
        for r in results:
            if r.mode != "backlog":
                continue
            ratios[r.scenario] = round(r.ready_per_s / c, 3) if c else None
            print(
                f"  {r.scenario:<14} {r.ready_per_s:>8,.1f} events/s to pdf_ready "
                f"= {ratios[r.scenario] or 0:.0%} of ceiling"
                + (
                    " (issue 7 target for the stand-in: ≥ 70 %)"
                    if r.scenario.startswith("standin")
                    else ""
                )
            )
    for r in results:
        ops = ", ".join(f"{op} {n:g}" for op, n in r.calls_per_invoice_by_op.items())
        api = ", ".join(f"{op} {t:g} ms" for op, t in r.api_ms.items())
        print(f"  {_key(r):<14} calls per invoice: {ops}; mean call time: {api or '-'}")
        if r.p99_bound_ms is not None:
            verdict = "within" if r.p99_ms <= r.p99_bound_ms else "ABOVE"
            print(
                f"  {_key(r):<14} p99 {r.p99_ms:g} ms {verdict} the bound "
                f"{r.p99_bound_ms:g} ms (query and mutation time from {r.p99_bound_from})"
            )
    print(f"\nwhole run: {time.monotonic() - wall:.0f} s")
    emit_json(
        {
            "wall_s": round(time.monotonic() - wall, 1),
            "bench": "pipeline",
            "concurrency": args.concurrency,
            "processes": args.processes,
            "prefetch": args.prefetch,
            "seed": args.seed,
            "duplicates": args.duplicates,
            "rate": args.rate,
            "ceiling": asdict(ceiling_result) if ceiling_result is not None else None,
            "scenarios": {_key(r): asdict(r) for r in results},
            "ratio_to_ceiling": ratios,
        }
    )
