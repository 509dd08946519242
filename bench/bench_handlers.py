"""Handlers + Afosto client against the in-process sandbox, no broker: invoices per second.

Each order is shipped, then its trigger goes plan → issue → first pdf check through the real
routing table and the real HTTP client, with `--concurrency` orders in flight. Prints figures;
asserts nothing about speed. Run: .venv/bin/python bench/bench_handlers.py --orders 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

import sandbox
from consumer.afosto import AfostoClient
from handlers.ports import Context, Deps, Forward, Stage
from handlers.routing import ROUTES


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def _one(deps: Deps, order_id: str, latencies: list[float]) -> None:
    started = time.perf_counter()
    body = json.dumps({"event_type": "order.shipped", "order_id": order_id, "event_id": order_id})
    stage: Stage = "triggers"
    raw = body.encode()
    while stage != "pdf":  # plan, then issue; the pdf stage waits on PDF generation
        route = ROUTES[stage]
        out = await route.handle(
            route.parse(raw, "application/json", None), deps, Context(1, None, None)
        )
        forward = next(o for o in out if isinstance(o, Forward))
        stage, raw = forward.stage, forward.message.model_dump_json().encode()
    latencies.append(time.perf_counter() - started)


async def main(orders: int, concurrency: int) -> None:
    async with sandbox.running(faults={"pdf_delay_min_s": 0.1, "pdf_delay_max_s": 0.2}) as sb:
        ids = [o.id for o in await sb.simulator.create_orders(orders, ship_fraction=1.0)]
        async with AfostoClient(
            sb.graphql_url, SecretStr(sb.api_key), concurrency=concurrency
        ) as api:
            deps = Deps(api, _Clock(), timedelta(minutes=5), timedelta(minutes=5))
            gate = asyncio.Semaphore(concurrency)
            latencies: list[float] = []

            async def run(order_id: str) -> None:
                async with gate:
                    await _one(deps, order_id, latencies)

            started = time.perf_counter()
            await asyncio.gather(*(run(i) for i in ids))
            elapsed = time.perf_counter() - started
        doubles = sb.ledger.invoiced_more_than_once()
    cuts = statistics.quantiles(latencies, n=100)
    print(f"orders={orders} concurrency={concurrency} elapsed={elapsed:.2f}s")
    print(f"invoices/s={orders / elapsed:.1f} (2 Afosto calls each: order, invoiceItems)")
    print(f"trigger→invoice latency p50={cuts[49] * 1000:.1f}ms p99={cuts[98] * 1000:.1f}ms")
    print(f"items invoiced twice: {len(doubles)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.concurrency))
