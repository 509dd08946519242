"""The whole pipeline on the local broker: sandbox events → service → invoice.created/pdf_ready.

Ships `--orders` orders through the simulator (fulfilment events on a private input
exchange), runs the service in-process, and prints invoices per second and the latency from
shipment to invoice.created and to invoice.pdf_ready. Prints figures; asserts nothing.
Run: .venv/bin/python bench/bench_pipeline.py --orders 300 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import time
from uuid import uuid4

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

import sandbox
from consumer.amqp.declare import delete
from consumer.amqp.topology import build
from consumer.app import running
from consumer.settings import load_settings

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def main(orders: int, concurrency: int, broker: str, copies: int) -> None:
    prefix = f"bench{uuid4().hex[:6]}"
    faults = {"pdf_delay_min_s": 0.1, "pdf_delay_max_s": 0.3}
    async with sandbox.running(amqp_url=broker, exchange=f"{prefix}.in", faults=faults) as sb:
        settings = load_settings(
            {
                "INVOICER_AMQP_URL": broker,
                "INVOICER_QUEUE_PREFIX": prefix,
                "INVOICER_INPUT_EXCHANGE": f"{prefix}.in",
                "INVOICER_OUTPUT_EXCHANGE": f"{prefix}.out",
                "INVOICER_AFOSTO_URL": sb.graphql_url,
                "INVOICER_AFOSTO_API_KEY": sb.api_key,
                "INVOICER_CONCURRENCY": str(concurrency),
                "INVOICER_WAIT_TIERS": "100ms,250ms,500ms,1s,5s",
                "INVOICER_HTTP_PORT": "0",
            },
            env_file=None,
        )
        connection = await aio_pika.connect_robust(broker)
        shipped: dict[str, float] = {}
        created: dict[str, float] = {}
        ready: dict[str, float] = {}
        invoice_order: dict[str, str] = {}
        all_ready = asyncio.Event()

        async def on_event(message: AbstractIncomingMessage) -> None:
            async with message.process():
                body = json.loads(message.body)
                now = time.perf_counter()
                if body["event_type"] == "invoice.created":
                    order_id = body["order_ids"][0]
                    invoice_order[body["invoice"]["id"]] = order_id
                    created.setdefault(order_id, now)
                else:
                    ready.setdefault(invoice_order.get(body["invoice_id"], body["invoice_id"]), now)
                    if len(ready) >= orders:
                        all_ready.set()

        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=200)
            out = await channel.declare_exchange(
                f"{prefix}.out", aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(f"{prefix}.capture", durable=True)
            await queue.bind(out, "#")
            tag = await queue.consume(on_event)
            async with running(settings, http=False):
                made = [await sb.simulator.create_order() for _ in range(orders)]
                started = time.perf_counter()

                async def ship(order_id: str) -> None:
                    shipped[order_id] = time.perf_counter()
                    step = await sb.simulator.ship(order_id)
                    for event_id in step.published:  # duplicate deliveries, as a real bus has
                        if copies:
                            await sb.simulator.republish(event_id, copies=copies)

                # All shipments land at once: the backlog shows the service's own throughput.
                await asyncio.gather(*(ship(o.id) for o in made))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_ready.wait(), 300)
                elapsed = max(created.values(), default=started) - started
            to_created = [created[o] - shipped[o] for o in created]
            to_ready = [ready[o] - shipped[o] for o in ready if o in shipped]
            print(f"orders: {orders}  concurrency: {concurrency}")
            if not all_ready.is_set():  # figures below cover only what finished in time
                print(f"INCOMPLETE: {len(ready)} of {orders} orders reached pdf_ready in 300 s")
            rate = len(created) / elapsed if elapsed > 0 else 0.0
            print(f"invoice.created: {len(created)} in {elapsed:.2f}s = {rate:.1f}/s")
            print(
                f"ship→invoice.created  p50 {statistics.median(to_created) * 1000:.0f} ms  "
                f"p95 {_pct(to_created, 0.95) * 1000:.0f} ms  max {max(to_created) * 1000:.0f} ms"
            )
            if to_ready:
                print(
                    f"ship→invoice.pdf_ready  p50 {statistics.median(to_ready) * 1000:.0f} ms  "
                    f"p95 {_pct(to_ready, 0.95) * 1000:.0f} ms  (sandbox PDF delay 0.1–0.3 s)"
                )
            print(f"double-invoiced items: {len(sb.ledger.invoiced_more_than_once())}")
            calls = sb.ledger.call_counts()
            per_op = {op: sum(kinds.values()) for op, kinds in calls.items()}
            total = sum(per_op.values())
            invoices = max(len(sb.ledger.invoices), 1)
            print(
                f"Afosto calls per invoice: {total / invoices:.2f} "
                f"({', '.join(f'{op} {n}' for op, n in sorted(per_op.items()))}; "
                f"each event delivered {1 + copies}x)"
            )
            await queue.cancel(tag)
        finally:
            await delete(connection, build(settings.amqp), shared_exchanges=True)
            async with connection.channel() as ch:
                await ch.queue_delete(f"{prefix}.capture")
            await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--broker", default=BROKER)
    parser.add_argument("--copies", type=int, default=0, help="extra deliveries of each event")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.orders, args.concurrency, args.broker, args.copies))
