"""`bench/inline.py --compare` and `--sweep`: the service (bench/pipeline.py's 50 ms scenario)
on the inline run's workload, and the service/inline ratios by prefetch."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from typing import Any

import aio_pika

from bench.amqp import BROKER
from bench.inline_harness import run_inline, workload
from bench.report import print_table

TARGET = 10  # issue 7: the service beats inline by >= 10x to pdf_ready at equal prefetch
STAGES = 3  # the service's stage consumers (triggers, intents, pdf), each with the prefetch
# --sweep sizes: inline drains about prefetch / 1.6 s events per second, the service 5-20x more;
# long enough that the last PDF's 2 s do not dominate a run (~5 min for 8,16,32,64).
SWEEP_ORDERS_PER_SLOT = 10
SWEEP_EVENTS_PER_SLOT = 100


async def compare(
    inline: dict[str, Any],
    broker: str,
    events: int | None,
    *,
    in_flight: str = "per-consumer",
) -> dict[str, Any]:
    """bench/pipeline.py's 50 ms scenario (its own backlog size unless `events`), with the
    inline run's latency, PDF delays, prefetch and seed.

    `in_flight` "per-consumer": each of the service's three stage consumers gets the inline
    consumer's prefetch P and the service handles up to 3P at once; "total": the service holds
    P deliveries in all, as many as inline (the stricter comparison)."""
    # Only --compare needs these.
    from bench.pipeline import DEFAULT_EVENTS, run_scenario
    from bench.pipeline_scenarios import SCENARIOS

    if broker != BROKER:
        # pipeline's service process connects to bench.amqp.BROKER; both must use one broker.
        raise SystemExit("--compare: set BENCH_AMQP_URL instead of --broker")
    latency = inline["latency_ms"]
    scenario = replace(
        SCENARIOS["sandbox-50ms"],
        name=f"sandbox-{latency:g}ms",
        latency_ms=latency,
        pdf_min_s=inline["pdf_delay_s"][0],
        pdf_max_s=inline["pdf_delay_s"][1],
    )
    concurrency = inline["prefetch"] * (STAGES if in_flight == "per-consumer" else 1)
    connection = await aio_pika.connect(broker)
    async with connection:
        service = await run_scenario(
            connection,
            scenario,
            events=events or scenario.events or DEFAULT_EVENTS,
            concurrency=concurrency,
            prefetch=inline["prefetch"],
            seed=inline["seed"],
        )
    result = asdict(service)

    def ratio(mine: float, theirs: float) -> float | None:
        return round(mine / theirs, 2) if theirs else None

    return {
        "service": result,
        "in_flight": in_flight,
        "service_concurrency": concurrency,
        "ratio_pdf_ready_per_s": ratio(service.ready_per_s, inline["events_per_s_pdf_ready"]),
        "ratio_created_per_s": ratio(service.created_per_s, inline["events_per_s_created"]),
        "target_ratio_pdf_ready": TARGET,
    }


def print_compare(inline: dict[str, Any], versus: dict[str, Any]) -> None:
    service, lat = versus["service"], inline["event_to_created_ms"]
    ratio = versus["ratio_pdf_ready_per_s"]
    print_table(
        f"service (bench/pipeline.py {service['scenario']}, {service['orders']} orders) vs "
        f"inline ({inline['orders']} orders), same run, prefetch {inline['prefetch']}, service "
        f"concurrency {versus['service_concurrency']} ({versus['in_flight']})",
        ["figure", "inline", "service", "service/inline"],
        [
            (
                "events/s → invoice.pdf_ready",
                inline["events_per_s_pdf_ready"],
                service["ready_per_s"],
                f"{ratio}x (target ≥ {TARGET}x: {'met' if (ratio or 0) >= TARGET else 'NOT met'})",
            ),
            (
                "events/s → invoice.created",
                inline["events_per_s_created"],
                service["created_per_s"],
                f"{versus['ratio_created_per_s']}x",
            ),
            ("event→created p50 ms", lat["p50"], service["p50_ms"], "backlog: mostly queueing"),
            ("event→created p99 ms", lat["p99"], service["p99_ms"], ""),
            (
                "Afosto calls / invoice",
                inline["afosto_calls_per_invoice"],
                service["calls_per_invoice"],
                "",
            ),
            (
                "CPU s / 1,000 events",
                inline["cpu_s_per_1000_events"],
                service["cpu_s_per_1000"],
                "",
            ),
            ("complete", inline["complete"], service["complete"], ""),
        ],
    )


async def sweep(prefetches: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Inline and the service at each prefetch, sized to ~10 s of work each: where the design
    shows (inline is bound by prefetch / hold) and where the machine's cores cap the service."""
    rows = []
    for prefetch in prefetches:
        inline = await run_inline(
            orders=prefetch * SWEEP_ORDERS_PER_SLOT,
            prefetch=prefetch,
            **workload(args),
        )
        row: dict[str, Any] = {"prefetch": prefetch, "inline": inline}
        for in_flight in ("per-consumer", "total"):
            row[in_flight] = await compare(
                inline, args.broker, prefetch * SWEEP_EVENTS_PER_SLOT, in_flight=in_flight
            )
        rows.append(row)
    print_table(
        f"service/inline to invoice.pdf_ready by prefetch (sandbox {args.latency_ms:g} ms, PDFs "
        f"after U({args.pdf_min_s:g}, {args.pdf_max_s:g}) s); per-consumer: each stage consumer "
        f"has the prefetch, concurrency {STAGES}x; total: concurrency = prefetch",
        ["prefetch", "inline ev/s", "service ev/s", "ratio", "service ev/s (total)", "ratio"],
        [
            (
                r["prefetch"],
                r["inline"]["events_per_s_pdf_ready"],
                r["per-consumer"]["service"]["ready_per_s"],
                f"{r['per-consumer']['ratio_pdf_ready_per_s']}x",
                r["total"]["service"]["ready_per_s"],
                f"{r['total']['ratio_pdf_ready_per_s']}x",
            )
            for r in rows
        ],
    )
    return rows
