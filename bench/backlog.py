"""Service memory while it drains a large backlog: RSS sampled every second over 100,000 triggers.

The triggers are cheap on purpose: `--orders` orders at the stand-in (zero latency, PDFs ready
at once) and 100,000 order.shipped events spread over them, each with its own event id (a
fulfilment pipeline announcing the same shipments again and again). The first event of an
order invoices it (order query, invoiceItems); every later one costs at most one order query
that finds nothing under INVOICE, and an ack (triggers for one order that are handled at the
same time share order reads, so there are fewer order calls than triggers). Drained is the
service's own count of finished trigger deliveries (`invoicer_messages_total` on /metrics).
The service (`python -m consumer run`, its own process) starts first; the triggers are
published while it drains (confirms awaited in windows), faster than it drains, so the backlog
builds up. Prints start/peak/end RSS and the growth (issue 7: < 20 MB), the drain rate and the
order calls per trigger.

Run: .venv/bin/python -m bench.backlog [--triggers 100000] [--orders 1000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aio_pika.abc import AbstractConnection

from bench import runner
from bench.amqp import BROKER, broker, cleanup, fresh_prefix, publish_all, shipped_event
from bench.capture import Capture, capturing
from bench.children import free_port, standin_process
from bench.measure import sampling
from bench.pipeline import DEFAULT_CONCURRENCY
from bench.report import emit_json, print_table
from bench.service import Names, metric_samples, service_env, service_process

DEFAULT_TRIGGERS = 100_000
DEFAULT_ORDERS = 1_000
MB = 2**20


async def _publish(
    connection: AbstractConnection,
    names: Names,
    messages: Iterable[tuple[str, bytes, str]],
) -> float:
    """Publish everything (confirms awaited 2,000 at a time); returns the seconds it took."""
    began = time.monotonic()
    async with connection.channel(publisher_confirms=True) as channel:
        await publish_all(channel, names.input_exchange, messages, window=2000)
    return time.monotonic() - began


async def _drained(
    port: int, queue: str, cap: Capture, triggers: int, orders: int, within: float
) -> int:
    """Poll the service's own count of finished trigger deliveries until every trigger is
    through and every order's PDF announced (or `within` passed); the count."""
    deadline = time.monotonic() + within
    while True:
        done = await _finished(port, queue)
        if (done >= triggers and len(cap.ready) >= orders) or time.monotonic() >= deadline:
            return done
        await asyncio.sleep(0.5)


async def _finished(port: int, queue: str) -> int:
    samples = await metric_samples(port, "invoicer_messages_total")
    return int(sum(value for _, labels, value in samples if labels.get("queue") == queue))


def _order_calls(ledger: dict[str, Any]) -> int:
    return int(sum(ledger.get("calls", {}).get("order", {}).values()))


async def main(args: argparse.Namespace) -> None:
    wall = time.monotonic()
    names = Names(fresh_prefix("backlog"))
    topology = names.topology()
    capture_queue = f"{names.prefix}.capture"
    rng = runner.seeded(args.seed, "backlog")
    async with broker(args.broker) as connection:
        try:
            async with standin_process(seed=args.seed) as api:
                orders = [
                    o["id"] for o in await api.control("POST", "orders", {"count": args.orders})
                ]
                # Every order at least once, the rest at random: all orders get invoiced.
                picks = orders + rng.choices(orders, k=max(0, args.triggers - len(orders)))
                rng.shuffle(picks)
                messages = (
                    ("order.shipped", shipped_event(o, f"bl-{i}"), f"bl-{i}")
                    for i, o in enumerate(picks)
                )
                sent = len(picks)
                port = free_port()
                http = {"INVOICER_HTTP_PORT": str(port)}
                env = service_env(names, api, concurrency=args.concurrency, extra=http)
                async with (
                    capturing(connection, names.output_exchange, capture_queue) as cap,
                    service_process(env, connection) as service,
                ):
                    started = time.monotonic()
                    async with sampling(service.pid, interval=1.0) as sampler:
                        # Published while the service drains: publishing outruns draining, so
                        # the backlog still builds up, and the run fits in 3 minutes.
                        publishing = asyncio.create_task(_publish(connection, names, messages))
                        try:
                            triggers_queue = topology.stage_queue("triggers")
                            drained = await _drained(
                                port, triggers_queue, cap, sent, len(orders), args.within
                            )
                            finished = time.monotonic()
                            publish_s = await publishing
                        finally:
                            publishing.cancel()
                    order_calls = _order_calls(await api.control("GET", "ledger"))
        finally:
            await cleanup(connection, topology, capture_queue)
    samples = sampler.samples
    rss = [s[1] for s in samples]
    start_rss, end_rss, peak_rss = rss[0], rss[-1], max(rss)
    seconds = finished - started
    complete = drained >= sent and len(cap.ready) >= len(orders)
    print(
        f"backlog: {sent:,} triggers over {len(orders):,} orders (stand-in, zero latency), "
        f"published in {publish_s:.1f} s ({sent / publish_s:,.0f}/s); service concurrency "
        f"{args.concurrency}"
    )
    if not complete:
        print(f"INCOMPLETE: {drained:,} of {sent:,} triggers drained in {seconds:.0f} s")
    step = max(1, len(samples) // 12)
    print_table(
        f"service RSS while draining (every ~{step} s)",
        ("t s", "RSS MB", "CPU s"),
        [[round(t - started, 1), round(r / MB, 1), round(c, 1)] for t, r, c in samples[::step]],
    )
    growth = (end_rss - start_rss) / MB
    print_table(
        "summary",
        ("measure", "value"),
        [
            ["triggers drained", drained],
            ["drain seconds", round(seconds, 1)],
            ["drain rate /s", round(drained / seconds, 1) if seconds > 0 else 0.0],
            ["invoices", len(cap.ready)],
            ["order calls per trigger", round(order_calls / max(drained, 1), 3)],
            ["RSS start MB", round(start_rss / MB, 1)],
            ["RSS peak MB", round(peak_rss / MB, 1)],
            ["RSS end MB", round(end_rss / MB, 1)],
            ["RSS growth MB (end - start)", round(growth, 1)],
        ],
    )
    print(f"\nwhole run: {time.monotonic() - wall:.0f} s")
    emit_json(
        {
            "wall_s": round(time.monotonic() - wall, 1),
            "bench": "backlog",
            "triggers": sent,
            "orders": len(orders),
            "drained": drained,
            "complete": complete,
            "publish_s": round(publish_s, 2),
            "drain_s": round(seconds, 2),
            "drain_per_s": round(drained / seconds, 1) if seconds > 0 else 0.0,
            "invoices": len(cap.ready),
            "order_calls": order_calls,
            "order_calls_per_trigger": round(order_calls / max(drained, 1), 3),
            "rss_start_mb": round(start_rss / MB, 1),
            "rss_peak_mb": round(peak_rss / MB, 1),
            "rss_end_mb": round(end_rss / MB, 1),
            "rss_growth_mb": round(growth, 1),
            "samples": len(samples),
            "concurrency": args.concurrency,
            "seed": args.seed,
        }
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--triggers", type=int, default=DEFAULT_TRIGGERS)
    p.add_argument("--orders", type=int, default=DEFAULT_ORDERS)
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--within", type=float, default=170.0, help="stop draining after this long")
    p.add_argument("--broker", default=BROKER)
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    runner.run(main(arguments))
