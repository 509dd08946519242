"""The peer to beat: one consumer that queries, invoices and sleep-polls the PDF inline.

The design most teams write first (issue 7, item 3): ONE aio-pika consumer on one quorum queue
with the service's prefetch; per `order.shipped` it queries the order (one aiohttp session,
keep-alive), invoices the INVOICE ids, publishes `invoice.created` (confirmed), then polls
`invoice(id)` every `--poll-interval` s (0.5 s: a reasonable first choice, neither hammering
the API nor adding much delay) while holding the delivery, publishes `invoice.pdf_ready`
(confirmed) and acks. Same GraphQL documents as the service; none of its code paths.

Measured like bench/pipeline.py: N orders are created and shipped at the sandbox (its own
process, seeded, `--latency-ms` per call, PDFs after U(`--pdf-min-s`, `--pdf-max-s`)), their
events pre-loaded into the queue, then the consumer (its own process, `--worker`) starts.
events/s = count / (last arrival on the output exchange − consumer start); event→created is
from each event's publish (in a backlog, mostly queueing); calls from the sandbox ledger; CPU
of the consumer process only. `--compare` then runs pipeline's 50 ms scenario in the same run.

Run: .venv/bin/python bench/inline.py [--orders 2000] [--prefetch 64] [--compare]
     .venv/bin/python bench/inline.py --sweep 8,16,32,64   (the ratio by prefetch, ~5 min)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/inline.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.amqp import BROKER
from bench.inline_compare import compare, print_compare, sweep
from bench.inline_harness import run_inline, workload
from bench.inline_worker import worker
from bench.report import emit_json, print_table


def _print(result: dict[str, Any]) -> None:
    lat = result["event_to_created_ms"]
    calls = ", ".join(f"{k} {v}" for k, v in sorted(result["afosto_calls"].items()))
    print_table(
        f"inline: {result['orders']} shipped orders as a backlog, prefetch {result['prefetch']}, "
        f"sandbox {result['latency_ms']:g} ms, PDFs after U({result['pdf_delay_s'][0]:g}, "
        f"{result['pdf_delay_s'][1]:g}) s, poll every {result['poll_interval_s']:g} s",
        ["figure", "value", "detail"],
        [
            ("events/s → invoice.created", result["events_per_s_created"], result["created"]),
            ("events/s → invoice.pdf_ready", result["events_per_s_pdf_ready"], result["pdf_ready"]),
            ("event→created p50 ms", lat["p50"], "from the trigger's publish"),
            ("event→created p95 ms", lat["p95"], ""),
            ("event→created p99 ms", lat["p99"], ""),
            ("Afosto calls / invoice", result["afosto_calls_per_invoice"], calls),
            ("CPU s / 1,000 events", result["cpu_s_per_1000_events"], "inline process"),
            ("peak RSS MB", result["peak_rss_mb"], "inline process"),
            (
                "mean hold per delivery s",
                result["mean_hold_s"],
                f"prefetch / hold = {result['prefetch_bound_per_s']}/s, the design's bound",
            ),
            ("items invoiced twice", result["items_invoiced_twice"], ""),
            ("complete", "yes" if result["complete"] else "NO", ""),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: the bench (default) or the inline consumer itself (`--worker`)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000, help="backlog of shipped orders")
    parser.add_argument("--prefetch", type=int, default=64, help="as the service's concurrency")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency per call")
    parser.add_argument("--pdf-min-s", type=float, default=0.2, help="PDFs after U(min, max) s")
    parser.add_argument("--pdf-max-s", type=float, default=2.0)
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between polls")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--broker", default=BROKER, help="default: BENCH_AMQP_URL or local")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="then the service on the same workload (bench/pipeline.py) and the ratio",
    )
    parser.add_argument(
        "--compare-events", type=int, default=None, help="service backlog (default: pipeline's)"
    )
    parser.add_argument(
        "--in-flight",
        choices=("per-consumer", "total"),
        default="per-consumer",
        help="--compare: the prefetch per stage consumer (service concurrency 3x) or in total",
    )
    parser.add_argument(
        "--sweep",
        default=None,
        help="comma-separated prefetches, e.g. 8,16,32,64: inline and the service at each "
        "(both in-flight rules), sized to ~10 s each; replaces the single run",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--graphql-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        key = os.environ["INVOICER_AFOSTO_API_KEY"]
        asyncio.run(
            worker(
                args.broker, args.prefix, args.graphql_url, key, args.prefetch, args.poll_interval
            )
        )
        return 0

    if args.sweep:
        rows = asyncio.run(sweep([int(p) for p in args.sweep.split(",")], args))
        emit_json({"bench": "inline-sweep", "sweep": rows})
        return 0 if all(r["inline"]["complete"] for r in rows) else 1

    async def bench() -> dict[str, Any]:
        result = await run_inline(
            orders=args.orders,
            prefetch=args.prefetch,
            **workload(args),
        )
        _print(result)
        if args.compare:
            result["compare"] = await compare(
                result, args.broker, args.compare_events, in_flight=args.in_flight
            )
            print_compare(result, result["compare"])
        return result

    result = asyncio.run(bench())
    emit_json(result)
    complete = result["complete"] and result.get("compare", {}).get("service", {}).get(
        "complete", True
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
