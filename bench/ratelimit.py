"""How much of Afosto's rate limit the service uses, and how often it is refused.

The sandbox (its own process) refuses calls beyond a token bucket of R calls/s with the
`RATE_LIMITED` GraphQL error Afosto sends (HTTP 200, no rate headers); the real service (`python
-m consumer run`, its own process) drains a backlog of order.shipped events big enough to keep
it busy well past the warm-up. The sandbox ledger is read every second. Steady window: after
`--warmup`, while at least `--concurrency` events still wait for their invoice (the service is
saturated). Over it: the calls the bucket let through per second as a fraction of R, and the
calls answered RATE_LIMITED. Issue 7's target: >= 90 % of R with < 1 % of calls refused. The
warm-up (the limiter starts unpaced and learns R) is shown apart.

Run: .venv/bin/python -m bench.ratelimit [--rate 50] [--burst 20] [--events N] [--latency-ms 50]
(also as `python bench/ratelimit.py`). Default run: R = 50, about 90 s of backlog, < 3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a file: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import runner
from bench.amqp import (
    BROKER,
    broker,
    cleanup,
    declare_topology,
    fresh_prefix,
    publish_all,
    shipped_event,
)
from bench.capture import capturing
from bench.children import sandbox_process
from bench.report import emit_json, print_table
from bench.service import Names, service_env, service_process

BURST = 20  # the sandbox's default rate_limit_burst (sandbox/faults.py)
CALLS_PER_INVOICE = 3.0  # for sizing the default backlog only
TARGET_FRACTION, TARGET_REFUSED = 0.90, 0.01


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the service started consuming
    calls: int  # every GraphQL call the sandbox answered
    refused: int  # of which RATE_LIMITED
    invoices: int  # invoice.created seen on the output exchange

    @property
    def accepted(self) -> int:
        return self.calls - self.refused


def _counts(ledger: dict[str, Any]) -> tuple[int, int]:
    calls: dict[str, dict[str, int]] = ledger.get("calls", {})
    total = sum(n for outcomes in calls.values() for n in outcomes.values())
    refused = sum(outcomes.get("rate_limited", 0) for outcomes in calls.values())
    return total, refused


def span(a: Sample, b: Sample, rate: float) -> dict[str, Any]:
    """Figures for the calls answered between samples `a` and `b`."""
    seconds = b.t - a.t
    calls, refused = b.calls - a.calls, b.refused - a.refused
    per_s = (b.accepted - a.accepted) / seconds if seconds > 0 else math.nan
    return {
        "from_s": round(a.t, 1),
        "to_s": round(b.t, 1),
        "seconds": round(seconds, 1),
        "calls": calls,
        "accepted_per_s": round(per_s, 2),
        "fraction_of_rate": round(per_s / rate, 4),
        "rate_limited": refused,
        "rate_limited_share": round(refused / calls, 4) if calls else math.nan,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    names = Names(fresh_prefix("ratelimit"))
    topology = names.topology()
    faults = {
        "rate_limit_rps": args.rate,
        "rate_limit_burst": args.burst,
        "latency_ms": args.latency_ms,
    }
    samples: list[Sample] = []
    ledger: dict[str, Any] = {}
    capture_queue = f"{names.prefix}.capture"
    async with broker(args.broker) as connection:
        try:
            async with sandbox_process(seed=args.seed, faults=faults) as api:
                # Creating the orders goes through the control API: no token is spent on it.
                orders = await api.control("POST", "orders", {"count": args.events, "ship": True})
                messages = [
                    ("order.shipped", shipped_event(o["id"], f"shipped-{o['id']}"), o["id"])
                    for o in orders
                ]
                runner.seeded(args.seed, "ratelimit-order").shuffle(messages)
                await declare_topology(connection, topology)
                async with connection.channel(publisher_confirms=True) as channel:
                    await publish_all(channel, names.input_exchange, messages)
                env = service_env(names, api, concurrency=args.concurrency)
                # The service publishes with `mandatory`: its output needs a bound queue.
                async with (
                    capturing(connection, names.output_exchange, capture_queue) as cap,
                    service_process(env, connection),
                ):
                    started = time.monotonic()
                    while True:
                        ledger = await api.control("GET", "ledger")
                        calls, refused = _counts(ledger)
                        now = time.monotonic() - started
                        samples.append(Sample(now, calls, refused, len(cap.created)))
                        done = len(cap.created) >= args.events and len(cap.ready) >= args.events
                        if done or now >= args.max_seconds:
                            break
                        await asyncio.sleep(args.interval)
        finally:
            await cleanup(connection, topology, capture_queue)
    return summarise(args, samples, ledger.get("calls", {}))


def summarise(
    args: argparse.Namespace, samples: list[Sample], calls: dict[str, dict[str, int]]
) -> dict[str, Any]:
    zero = Sample(0.0, 0, 0, 0)
    first = next((s for s in samples if s.t >= args.warmup), None)
    # Saturated while at least `concurrency` events wait for their invoice (the service holds
    # that many at once); the tail after that is sampled but not measured.
    busy = [s for s in samples if args.events - s.invoices >= args.concurrency]
    last = busy[-1] if busy else None
    end = samples[-1] if samples else zero
    steady = span(first, last, args.rate) if first and last and last.t > first.t else None
    warmup = span(zero, first, args.rate) if first else None
    result: dict[str, Any] = {
        "bench": "ratelimit",
        "rate_limit_rps": args.rate,
        "burst": args.burst,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "events": args.events,
        "invoices": end.invoices,
        "complete": end.invoices >= args.events,
        "warmup_s": args.warmup,
        "steady": steady,
        "warmup": warmup,
        "whole_run": span(zero, end, args.rate),
        "fraction_of_rate": steady["fraction_of_rate"] if steady else None,
        "rate_limited": steady["rate_limited"] if steady else None,
        "rate_limited_share": steady["rate_limited_share"] if steady else None,
        "steady_seconds": steady["seconds"] if steady else 0.0,
        "calls_by_operation": calls,  # the whole run, operation -> outcome -> count
    }
    result["target_met"] = bool(
        steady
        and steady["fraction_of_rate"] >= TARGET_FRACTION
        and steady["rate_limited_share"] < TARGET_REFUSED
    )
    result["timeline"] = [
        span(a, b, args.rate)
        for a, b in zip(samples[:: args.every], samples[args.every :: args.every], strict=False)
    ]
    return result


def report(result: dict[str, Any]) -> None:
    rate = result["rate_limit_rps"]
    rows = []
    for label in ("warmup", "steady", "whole_run"):
        part = result[label]
        if part is None:
            rows.append((label, "-", "-", 0, math.nan, math.nan, 0, math.nan))
            continue
        rows.append(
            (
                label,
                f"{part['from_s']:.0f}-{part['to_s']:.0f}",
                part["seconds"],
                part["calls"],
                part["accepted_per_s"],
                100 * part["fraction_of_rate"],
                part["rate_limited"],
                100 * part["rate_limited_share"],
            )
        )
    print_table(
        f"Afosto calls against a token bucket of {rate:g} calls/s (burst {result['burst']}, "
        f"latency {result['latency_ms']:g} ms, {result['events']} events)",
        ("window", "s", "seconds", "calls", "accepted/s", "% of R", "RATE_LIMITED", "% refused"),
        rows,
    )
    print_table(
        "Timeline",
        ("from s", "accepted/s", "% of R", "RATE_LIMITED"),
        [
            (
                f"{p['from_s']:.0f}",
                p["accepted_per_s"],
                100 * p["fraction_of_rate"],
                p["rate_limited"],
            )
            for p in result["timeline"]
        ],
    )
    verdict = "met" if result["target_met"] else "NOT met"
    print(
        f"\ntarget (>= {TARGET_FRACTION:.0%} of R, < {TARGET_REFUSED:.0%} refused, steady window "
        f"{result['steady_seconds']:.0f} s): {verdict}"
    )
    if result["steady_seconds"] < 60:
        print("note: steady window under 60 s (raise --events for a longer one)")


async def main(args: argparse.Namespace) -> None:
    result = await measure(args)
    report(result)
    emit_json(result)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=50.0, help="R: the bucket's calls/s")
    p.add_argument("--burst", type=int, default=BURST, help="tokens the bucket saves up")
    p.add_argument("--events", type=int, default=None, help="backlog (default: ~90 s of calls)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency per call")
    p.add_argument("--concurrency", type=int, default=64, help="the service's INVOICER_CONCURRENCY")
    p.add_argument("--warmup", type=float, default=15.0, help="seconds left out of the window")
    p.add_argument("--max-seconds", type=float, default=140.0, help="stop measuring after this")
    p.add_argument("--interval", type=float, default=1.0, help="ledger sampling period (s)")
    p.add_argument("--every", type=int, default=10, help="samples per timeline row")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--broker", default=BROKER)
    return p


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    if args.events is None:
        args.events = math.ceil(args.rate * 90 / CALLS_PER_INVOICE)
    return args


if __name__ == "__main__":
    runner.run(main(arguments()))
