"""Sandbox throughput: `order` queries per second with no faults (target > 1,500/s).

Starts `python -m sandbox` in its own process (so server and clients each get a core), then
hammers POST /graphql with concurrent aiohttp clients sending the service's order query
(consumer/afosto/operations/order.graphql). Prints figures; asserts nothing about speed."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time

import aiohttp

from consumer.afosto.operations import document

# The service's own order query (what plan sends), so the figure is the one that matters.
ORDER_QUERY = document("order")

HEADERS = {"Authorization": "Bearer sandbox-key"}


async def worker(
    session: aiohttp.ClientSession,
    url: str,
    ids: list[str],
    until: float,
    latencies: list[float],
    failures: list[str],
) -> None:
    rng = random.Random(len(latencies))
    while time.perf_counter() < until:
        payload = {"query": ORDER_QUERY, "variables": {"id": rng.choice(ids)}}
        started = time.perf_counter()
        async with session.post(url, json=payload, headers=HEADERS) as response:
            body = await response.json()
        latencies.append(time.perf_counter() - started)
        if response.status != 200 or "errors" in body:
            failures.append(f"{response.status} {body.get('errors')}")


async def measure(base_url: str, concurrency: int, seconds: float, cache: bool) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        settings = {"response_cache": cache}
        async with session.patch(f"{base_url}/_control/settings", json=settings) as response:
            assert response.status == 200
        async with session.get(f"{base_url}/_control/orders") as response:
            ids = [o["id"] for o in await response.json()]
        url = f"{base_url}/graphql"
        warmup: list[float] = []
        await asyncio.gather(
            *(
                worker(session, url, ids, time.perf_counter() + 1.0, warmup, [])
                for _ in range(concurrency)
            )
        )
        latencies: list[float] = []
        failures: list[str] = []
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(
            *(worker(session, url, ids, until, latencies, failures) for _ in range(concurrency))
        )
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    mode = "response cache on (default)" if cache else "response cache off: every query executed"
    print(f"== {mode}; {len(ids)} orders, concurrency {concurrency}, {seconds:.0f} s measured")
    print(f"order queries/s: {len(latencies) / elapsed:,.0f}  (target > 1,500)")
    print(f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms, failures {len(failures)}")
    if failures:
        print(f"first failure: {failures[0]}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "--port", "0", "--seed", "1",
        "--orders", str(args.orders), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        base_url = line.strip().rsplit(" ", 1)[-1]
        for cache in (True, False):
            await measure(base_url, args.concurrency, args.seconds, cache)
    finally:
        process.terminate()
        await process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
