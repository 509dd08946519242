"""The inline bench's harness: the sandbox process, the backlog, the inline consumer's process
(bench/inline_worker.py, started as `bench/inline.py --worker`), the capture and the figures."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection

from bench.amqp import BROKER, fresh_prefix, publish_all, shipped_event
from bench.capture import capturing
from bench.children import child_process, sandbox_process, wait_for
from bench.measure import cpu_seconds, sampling
from bench.report import ms, percentile
from bench.runner import seeded
from bench.service import Names

# The worker runs as the bench's own script, as `python bench/inline.py --worker`.
SCRIPT = str(Path(__file__).resolve().with_name("inline.py"))


async def _declare(connection: AbstractConnection, names: Names) -> str:
    """Input exchange → one quorum queue for the inline consumer; the output exchange."""
    queue_name = f"{names.prefix}.inline"
    async with connection.channel() as channel:
        inbound = await channel.declare_exchange(
            names.input_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(inbound, "order.shipped")
        await channel.declare_exchange(
            names.output_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
    return queue_name


async def _undeclare(connection: AbstractConnection, names: Names) -> None:
    async with connection.channel() as channel:
        await channel.queue_delete(f"{names.prefix}.inline")
        for exchange in (names.input_exchange, names.output_exchange):
            await channel.exchange_delete(exchange)


async def run_inline(
    *,
    orders: int = 2000,
    prefetch: int = 64,
    latency_ms: float = 50.0,
    pdf_min_s: float = 0.2,
    pdf_max_s: float = 2.0,
    poll_s: float = 0.5,
    seed: int = 7,
    broker: str = BROKER,
    within_s: float = 150.0,
) -> dict[str, Any]:
    """Drain a backlog of `orders` shipped orders through the inline consumer; the figures."""
    names = Names(fresh_prefix("inline"))
    rng = random_ids(seed)
    faults = {"latency_ms": latency_ms, "pdf_delay_min_s": pdf_min_s, "pdf_delay_max_s": pdf_max_s}
    connection = await aio_pika.connect(broker)
    try:
        await _declare(connection, names)
        async with (
            sandbox_process(seed=seed, faults=faults) as api,
            capturing(connection, names.output_exchange, f"{names.prefix}.capture") as cap,
        ):
            argv = [sys.executable, SCRIPT, "--worker"]
            argv += [f"--broker={broker}", f"--prefix={names.prefix}"]
            argv += [f"--graphql-url={api.graphql_url}", f"--prefetch={prefetch}"]
            argv += [f"--poll-interval={poll_s}"]
            env = {**os.environ, "INVOICER_AFOSTO_API_KEY": api.api_key}
            async with child_process("inline", argv, env) as child:
                await wait_for(
                    lambda: "connected" in child.lines, within=30, what="inline", child=child
                )
                made = await api.control("POST", "orders", {"count": orders, "ship": True})
                order_of = {next(rng): o["id"] for o in made}
                published: dict[str, float] = {}
                async with connection.channel(publisher_confirms=True) as channel:
                    await publish_all(
                        channel,
                        names.input_exchange,
                        [("order.shipped", shipped_event(o, e), e) for e, o in order_of.items()],
                        on_publish=lambda e: published.__setitem__(order_of[e], time.monotonic()),
                    )
                async with sampling(child.pid) as sampler:
                    cpu_before, started = cpu_seconds(child.pid), time.monotonic()
                    os.kill(child.pid, signal.SIGUSR1)  # the backlog is in: start consuming
                    await cap.until(
                        lambda c: len(c.created) >= orders and len(c.ready) >= orders, within_s
                    )
                    cpu = cpu_seconds(child.pid) - cpu_before
                os.kill(child.pid, signal.SIGTERM)
                await wait_for(
                    lambda: any(line.startswith("holds ") for line in child.lines),
                    within=15,
                    what="inline to stop",
                    child=child,
                )
                held, mean_hold = next(
                    json.loads(line.split(" ", 1)[1])
                    for line in child.lines
                    if line.startswith("holds ")
                )
            ledger = await api.control("GET", "ledger")
        return {
            **_figures(cap.created, cap.ready, published, started, cpu, ledger, orders),
            "prefetch": prefetch,
            "latency_ms": latency_ms,
            "pdf_delay_s": [pdf_min_s, pdf_max_s],
            "poll_interval_s": poll_s,
            "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
            "deliveries_held": held,
            "mean_hold_s": round(mean_hold, 3),
            # The design's throughput bound: every slot of the prefetch busy all the time.
            "prefetch_bound_per_s": round(prefetch / mean_hold, 1) if mean_hold else None,
            "seed": seed,
        }
    finally:
        await _undeclare(connection, names)
        await connection.close()


def random_ids(seed: int) -> Iterator[str]:
    """Seeded event ids, so a rerun sends byte-identical triggers."""
    rng = seeded(seed, "inline-events")
    while True:
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _figures(
    created: dict[str, float],
    ready: dict[str, float],
    published: dict[str, float],
    started: float,
    cpu: float,
    ledger: dict[str, Any],
    orders: int,
) -> dict[str, Any]:
    to_created = [created[o] - published[o] for o in created if o in published]
    calls = {op: sum(kinds.values()) for op, kinds in ledger["calls"].items()}
    invoices = max(int(ledger["invoices"]), 1)

    def rate(times: dict[str, float]) -> float:
        span = max(times.values(), default=started) - started
        return len(times) / span if span > 0 else 0.0

    return {
        "bench": "inline",
        "orders": orders,
        "complete": len(created) >= orders and len(ready) >= orders,
        "created": len(created),
        "pdf_ready": len(ready),
        "events_per_s_created": round(rate(created), 2),
        "events_per_s_pdf_ready": round(rate(ready), 2),
        "event_to_created_ms": {f"p{q}": ms(percentile(to_created, q)) for q in (50, 95, 99)},
        "afosto_calls_per_invoice": round(sum(calls.values()) / invoices, 3),
        "afosto_calls": calls,
        "invoices": ledger["invoices"],
        "items_invoiced_twice": len(ledger["invoiced_more_than_once"]),
        "cpu_s_per_1000_events": round(cpu / max(len(created), 1) * 1000, 3),
    }


def workload(args: argparse.Namespace) -> dict[str, Any]:
    """run_inline's keyword arguments that the command line fixes for every run."""
    return {
        "latency_ms": args.latency_ms,
        "pdf_min_s": args.pdf_min_s,
        "pdf_max_s": args.pdf_max_s,
        "poll_s": args.poll_interval,
        "seed": args.seed,
        "broker": args.broker,
    }
