"""CPU per Afosto call: the service's HTTP/1.1 client (consumer/afosto/http11.py) against
aiohttp's client used the way the service used it before (one session, kept-alive connector,
per-call timeout), both POSTing the order query to the bench stand-in in its own process.

Rounds alternate A, B, A, B... in one run, because this machine's speed drifts; the figure is
client CPU µs per request (this process's user+system time), and requests/s.
Run: .venv/bin/python -m bench.http_client [--requests 6000] [--in-flight 64] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
import orjson

from bench import runner
from bench.children import standin_process
from bench.report import emit_json, print_table
from consumer.afosto.http11 import Http11Client
from consumer.afosto.operations import document

Call = Callable[[], Awaitable[None]]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _round(call: Call, requests: int, in_flight: int) -> tuple[float, float]:
    """(client CPU µs per request, requests/s) for `requests` calls, `in_flight` at a time."""
    slots = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with slots:
            await call()

    cpu, wall = _cpu(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    return 1e6 * cpu / requests, requests / wall


async def run(requests: int, in_flight: int, rounds: int) -> dict[str, dict[str, float]]:
    async with standin_process() as api:
        order = (await api.control("POST", "orders", {"count": 1, "ship": True}))[0]
        body = orjson.dumps({"query": document("order"), "variables": {"id": order["id"]}})
        headers = {
            "User-Agent": "bench",
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {api.api_key}",
        }
        timeout = aiohttp.ClientTimeout(total=10, connect=5)
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session,
            Http11Client(api.graphql_url, headers, keep=in_flight) as lean,
        ):

            async def with_aiohttp() -> None:
                async with session.post(
                    api.graphql_url, data=body, headers=headers, timeout=timeout
                ) as response:
                    orjson.loads(await response.read())

            async def with_http11() -> None:
                orjson.loads((await lean.post(body)).body)

            clients: dict[str, Call] = {"aiohttp": with_aiohttp, "http11": with_http11}
            await _round(with_aiohttp, 200, in_flight)  # warm both: connections, caches
            await _round(with_http11, 200, in_flight)
            seen: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
            for _ in range(rounds):
                for name, call in clients.items():
                    seen[name].append(await _round(call, requests, in_flight))
    return {
        name: {
            "cpu_us_per_request": round(statistics.median(r[0] for r in results), 1),
            "requests_per_s": round(statistics.median(r[1] for r in results), 1),
            "rounds": len(results),
        }
        for name, results in seen.items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=6000)
    p.add_argument("--in-flight", type=int, default=64)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--uvloop", action="store_true", help="the service's default loop")
    args = p.parse_args()
    figures = runner.run(run(args.requests, args.in_flight, args.rounds), use_uvloop=args.uvloop)
    print_table(
        f"{args.requests:,} order queries per round, {args.in_flight} in flight, "
        f"median of {args.rounds} rounds each",
        ("client", "CPU µs/request", "requests/s"),
        [(n, f["cpu_us_per_request"], f["requests_per_s"]) for n, f in figures.items()],
    )
    ratio = figures["http11"]["cpu_us_per_request"] / figures["aiohttp"]["cpu_us_per_request"]
    print(f"http11 spends {ratio:.0%} of aiohttp's CPU per request")
    emit_json(
        {
            "bench": "http_client",
            "requests": args.requests,
            "in_flight": args.in_flight,
            "loop": "uvloop" if args.uvloop else "asyncio",
            "clients": figures,
            "cpu_ratio_http11_to_aiohttp": round(ratio, 3),
        }
    )


if __name__ == "__main__":
    main()
