"""The real service (`python -m consumer run`, its own process) draining a backlog of
order.shipped events, against an Afosto stand-in and the sandbox, beside the broker's ceiling.

Per scenario: N orders (one shipped event each, plus an optional fraction of duplicate
deliveries) are created at the API, their events pre-loaded into the service's triggers
queue, then the service starts; the clock starts when it consumes. A capture queue on the
output exchange gives events/s to invoice.created and to invoice.pdf_ready, and
event→invoice.created latency (from each event's publish time; in a backlog this is mostly
queueing). Afosto calls per invoice come from the sandbox ledger / stand-in counters, CPU
and peak RSS of the service from /proc. The ceiling (bench/ceiling.py) runs in the same run,
and the stand-in scenarios are printed as a ratio of it (issue 7: ≥ 70 %).

Scenarios: standin (zero latency, PDFs ready at once), sandbox-0ms and sandbox-50ms (PDFs
ready after U(0.2, 2) s); standin-pdf (PDFs after U(0.2, 2) s) on request. `--rate R`
publishes at R events/s into the running service instead
of a backlog (`--rate half`: after each backlog run, a run at half the events/s it reached),
and prints p99 event→created next to 2 × (query + mutation time) + 150 ms, with the query and
mutation times the service itself measured (its /metrics), else the configured latency.

Run: .venv/bin/python -m bench.pipeline [--events 5000] [--concurrency 64]
     [--scenarios standin,sandbox-0ms,sandbox-50ms] [--duplicates 0.1] [--rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from aio_pika.abc import AbstractConnection

from bench import ceiling, runner
from bench.amqp import (
    BROKER,
    broker,
    cleanup,
    declare_topology,
    fresh_prefix,
    persistent,
    publish_all,
)
from bench.capture import capturing
from bench.children import free_port
from bench.measure import CpuMeter, local_broker_pid, sampling
from bench.pipeline_report import ScenarioResult, report, scenario_result
from bench.pipeline_scenarios import DEFAULT_SCENARIOS, SCENARIOS, Scenario, api_for, deliveries
from bench.service import Names, metric_sums, service_env, service_processes

DEFAULT_EVENTS = 5000
DEFAULT_CONCURRENCY = ceiling.DEFAULT_CONCURRENCY
# What each scenario may take at most; the default run must stay under 3 minutes in total.
SCENARIO_TIMEOUT = 120.0
LATENCY_METRIC = "invoicer_afosto_call_duration_seconds"


async def _paced(
    connection: AbstractConnection,
    exchange: str,
    messages: list[tuple[str, bytes, str]],
    rate: float,
    sent: dict[str, float],
) -> None:
    """Publish at `rate` messages/s (confirms awaited in the background, a few at a time)."""
    async with connection.channel(publisher_confirms=True) as channel:
        target = await channel.get_exchange(exchange, ensure=False)
        pending: set[asyncio.Future[Any]] = set()
        start = time.monotonic()
        for i, (key, body, order_id) in enumerate(messages):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent.setdefault(order_id, time.monotonic())
            message = persistent(body, order_id)
            pending.add(asyncio.ensure_future(target.publish(message, key)))
            if len(pending) >= 100:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    future.result()
        if pending:
            await asyncio.gather(*pending)


async def run_scenario(
    connection: AbstractConnection,
    scenario: Scenario,
    *,
    events: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    seed: int = 0,
    duplicates: float = 0.0,
    rate: float | None = None,
    wait_tiers: str | None = None,
    within: float = SCENARIO_TIMEOUT,
    prefetch: int | None = None,
    service_extra: dict[str, str] | None = None,
    processes: int = 1,
) -> ScenarioResult:
    """One scenario end to end (API process, `processes` service processes, capture); cleans
    up after. CPU counts every service process, peak RSS the first."""
    names = Names(fresh_prefix("pipeline"))
    topology = names.topology(wait_tiers)
    capture_queue = f"{names.prefix}.capture"
    metrics_port = free_port()
    try:
        async with api_for(scenario, seed) as api:
            orders = await api.control("POST", "orders", {"count": events, "ship": True})
            order_ids = [o["id"] for o in orders]
            messages = deliveries(order_ids, duplicates, seed)
            env = service_env(
                names,
                api,
                concurrency=concurrency,
                wait_tiers=wait_tiers,
                extra={
                    "INVOICER_HTTP_PORT": str(metrics_port),
                    **({"INVOICER_PREFETCH": str(prefetch)} if prefetch else {}),
                    **(service_extra or {}),
                },
            )
            await declare_topology(connection, topology)
            sent: dict[str, float] = {}
            async with capturing(connection, names.output_exchange, capture_queue) as cap:
                if rate is None:
                    async with connection.channel(publisher_confirms=True) as channel:
                        await publish_all(
                            channel,
                            names.input_exchange,
                            messages,
                            on_publish=lambda o: sent.setdefault(o, time.monotonic()),
                        )
                async with service_processes(env, connection, processes) as services:
                    started = time.monotonic()
                    meter = CpuMeter(
                        {
                            "service": [c.pid for c in services],
                            "api": [api.child.pid],
                            "broker": [local_broker_pid()],
                        }
                    )
                    meter.start()
                    async with sampling(services[0].pid) as sampler:
                        publisher = None
                        if rate is not None:
                            publisher = asyncio.create_task(
                                _paced(connection, names.input_exchange, messages, rate, sent)
                            )
                        n = len(order_ids)
                        if rate is not None:  # the publishing alone takes len/rate seconds
                            within = max(within, len(messages) / rate + 60)
                        complete = await cap.until(
                            lambda c: len(c.created) >= n and len(c.ready) >= n, within
                        )
                        if publisher is not None:
                            await publisher
                        # As in ceiling.py: a starved machine can see the consumers only after
                        # a tiny backlog is through; the first output then marks the start.
                        started = min(started, min(cap.created.values(), default=started))
                        end_created = max(cap.created.values(), default=started)
                        end_ready = max(cap.ready.values(), default=started)
                        meter.stop()
                    try:
                        latency = await metric_sums(metrics_port, LATENCY_METRIC, "operation")
                    except Exception:  # the figure is optional; the run is not
                        latency = {}
            ledger = await api.control("GET", "ledger")
    finally:
        await cleanup(connection, topology, capture_queue)
    return scenario_result(
        scenario,
        rate,
        order_ids,
        messages,
        cap,
        sent,
        ledger,
        latency,
        complete=complete,
        started=started,
        end_created=end_created,
        end_ready=end_ready,
        cpu_used=meter.used,
        peak_rss=sampler.peak_rss,
    )


async def main(args: argparse.Namespace) -> None:
    wall = time.monotonic()
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    results: list[ScenarioResult] = []
    ceiling_result = None
    async with broker(args.broker) as connection:
        if args.ceiling_events:
            ceiling_result = await ceiling.pattern(
                connection,
                events=args.ceiling_events,
                concurrency=args.concurrency,
                prefetch=args.prefetch,
                use_uvloop=args.uvloop,
                broker=args.broker,
            )
        for name in chosen:
            scenario = SCENARIOS[name]
            events = args.events
            if scenario.events is not None and args.events == DEFAULT_EVENTS:
                events = scenario.events
                print(f"{name}: scaled down to {events} events to fit the 3-minute budget")
            common: dict[str, Any] = {
                "concurrency": args.concurrency,
                "prefetch": args.prefetch,
                "seed": args.seed,
                "duplicates": args.duplicates,
                "wait_tiers": args.wait_tiers,
                "processes": args.processes,
                "service_extra": {"INVOICER_LOG_LEVEL": args.log_level},
            }
            rate = None if args.rate == "half" else args.rate
            first = await run_scenario(connection, scenario, events=events, rate=rate, **common)
            results.append(first)
            if args.rate == "half" and first.created_per_s > 0:
                # The p99 target holds at half the rate this scenario just sustained.
                half = round(first.created_per_s / 2, 1)
                again = await run_scenario(
                    connection, scenario, events=args.rate_events, rate=half, **common
                )
                results.append(again)
    report(args, results, ceiling_result, wall)


def _rate(text: str) -> float | str:
    if text == "half":
        return text
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive or 'half'")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="orders, one event each")
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help="comma-separated")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    p.add_argument(
        "--prefetch",
        type=int,
        default=None,
        help="INVOICER_PREFETCH per stage consumer (default: the service's, = concurrency)",
    )
    p.add_argument(
        "--processes", type=int, default=1, help="service processes (replicas) per scenario"
    )
    p.add_argument(
        "--log-level",
        default="WARNING",
        help="the service's INVOICER_LOG_LEVEL (its own default, INFO, logs a line per message)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--duplicates", type=float, default=0.0, help="extra deliveries per order")
    p.add_argument(
        "--rate",
        type=_rate,
        default=None,
        help="events/s into the running service instead of a backlog; 'half': a backlog run, "
        "then --rate-events at half the events/s it reached",
    )
    p.add_argument("--rate-events", type=int, default=1000, help="events of a --rate half run")
    p.add_argument("--ceiling-events", type=int, default=ceiling.DEFAULT_EVENTS, help="0: skip")
    p.add_argument("--wait-tiers", default=None, help="INVOICER_WAIT_TIERS for the service")
    p.add_argument("--uvloop", action="store_true", help="bench process and ceiling worker")
    p.add_argument("--broker", default=BROKER)
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    runner.run(main(arguments), use_uvloop=arguments.uvloop)
