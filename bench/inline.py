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
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractIncomingMessage

if not __package__:  # run as a file (python bench/inline.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.amqp import BROKER, fresh_prefix, publish_all, shipped_event
from bench.capture import capturing
from bench.children import child_process, sandbox_process, wait_for
from bench.measure import cpu_seconds, sampling
from bench.report import emit_json, ms, percentile, print_table
from bench.runner import seeded
from bench.service import Names
from consumer.afosto.operations import OperationName, document

log = logging.getLogger("inline")
SCRIPT = str(Path(__file__).resolve())
TARGET = 10  # issue 7: the service beats inline by >= 10x to pdf_ready at equal prefetch
STAGES = 3  # the service's stage consumers (triggers, intents, pdf), each with the prefetch
# --sweep sizes: inline drains about prefetch / 1.6 s events per second, the service 5-20x more;
# long enough that the last PDF's 2 s do not dominate a run (~5 min for 8,16,32,64).
SWEEP_ORDERS_PER_SLOT = 10
SWEEP_EVENTS_PER_SLOT = 100

# -- the inline consumer (runs in its own process: `bench/inline.py --worker`) ---------------


class AfostoError(Exception):
    """Afosto answered with GraphQL errors (or no data)."""


class Inline:
    """The inline consumer: every step of an event happens before its delivery is acked."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, out: AbstractExchange, poll_s: float
    ) -> None:
        self.session, self.url, self.out, self.poll_s = session, url, out, poll_s
        self.holds: list[float] = []  # seconds each delivery stayed unacked
        self.in_flight = 0

    async def call(self, operation: OperationName, variables: dict[str, Any]) -> dict[str, Any]:
        """POST one GraphQL operation; its `data`, or AfostoError."""
        payload = {"query": document(operation), "variables": variables}
        async with self.session.post(self.url, json=payload) as response:
            response.raise_for_status()
            body: dict[str, Any] = await response.json()
        if body.get("errors") or not body.get("data"):
            raise AfostoError(json.dumps(body.get("errors"))[:300])
        data: dict[str, Any] = body["data"]
        return data

    async def publish(self, event: dict[str, Any], correlation_id: str) -> None:
        """Persistent, mandatory, and awaited until the broker confirms it."""
        message = aio_pika.Message(
            json.dumps(event).encode(),
            content_type="application/json",
            message_id=event["event_id"],
            correlation_id=correlation_id,
            type=event["event_type"],
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.out.publish(message, event["event_type"], mandatory=True, timeout=10)

    async def handle(self, trigger: dict[str, Any]) -> None:
        """order → invoiceItems → invoice.created → poll pdf_url → invoice.pdf_ready."""
        event_id = str(trigger["event_id"])
        order = (await self.call("order", {"id": trigger["order_id"]}))["order"]
        ids = sorted(i for a in order["actions"] if a["action"] == "INVOICE" for i in a["ids"])
        if not ids:
            return  # nothing (left) to invoice: a duplicate or late event
        # Deterministic id so a redelivery after a crash cannot invoice the same items twice.
        invoice_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "inline:" + ",".join(ids)))
        done = await self.call("invoice_items", {"input": {"items": ids, "invoice_id": invoice_id}})
        invoice = done["invoiceItems"]["invoice"]
        await self.publish(
            _event("invoice.created", invoice["id"], event_id)
            | {"invoice": invoice, "order_ids": [o["id"] for o in invoice["orders"]]}
            | {"item_ids": ids},
            event_id,
        )
        while invoice["pdf_url"] is None:
            await asyncio.sleep(self.poll_s)  # holding the delivery: the design under test
            invoice = (await self.call("invoice", {"id": invoice_id}))["invoice"]
        await self.publish(
            _event("invoice.pdf_ready", invoice["id"], event_id)
            | {"invoice_id": invoice["id"], "invoice_number": invoice["number"]}
            | {"pdf_url": invoice["pdf_url"]},
            event_id,
        )

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        received = time.monotonic()
        self.in_flight += 1
        try:
            await self.handle(json.loads(message.body))
        except Exception:
            log.exception("event %s failed; requeued", message.message_id)
            await message.nack(requeue=True)
        else:
            await message.ack()
        finally:
            self.in_flight -= 1
        self.holds.append(time.monotonic() - received)


def _event(event_type: str, invoice_id: str, correlation_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"inline:{event_type}:{invoice_id}")),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "correlation_id": correlation_id,
    }


async def worker(
    broker: str, prefix: str, graphql_url: str, api_key: str, prefetch: int, poll_s: float
) -> None:
    """Connect, wait for SIGUSR1 (the backlog is in), consume `<prefix>.inline` until SIGTERM."""
    go, stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    connection = await aio_pika.connect_robust(broker)
    headers = {"Authorization": f"Bearer {api_key}"}
    connector = aiohttp.TCPConnector(limit=prefetch)  # one kept-alive connection per delivery
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        connection,
        aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as session,
    ):
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=prefetch)
        out = await channel.get_exchange(f"{prefix}.out")
        queue = await channel.get_queue(f"{prefix}.inline")
        inline = Inline(session, graphql_url, out, poll_s)
        print("connected", flush=True)
        await asyncio.wait(
            [asyncio.create_task(go.wait()), asyncio.create_task(stop.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
        if stop.is_set():
            return
        tag = await queue.consume(inline.on_message)
        print("consuming", flush=True)
        await stop.wait()
        await queue.cancel(tag)
        # The harness stops us once the last event arrived: its ack may still be on the way.
        for _ in range(500):
            if not inline.in_flight:
                break
            await asyncio.sleep(0.01)
        # For the harness: prefetch / mean hold is this design's throughput bound.
        holds = inline.holds
        print(f"holds {json.dumps([len(holds), sum(holds) / max(len(holds), 1)])}", flush=True)


# -- the harness: sandbox process, backlog, the worker process, capture, figures -------------


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
    from bench.pipeline import DEFAULT_EVENTS, SCENARIOS, run_scenario  # only --compare needs it

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


def _print_compare(inline: dict[str, Any], versus: dict[str, Any]) -> None:
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


def _workload(args: argparse.Namespace) -> dict[str, Any]:
    """run_inline's keyword arguments that the command line fixes for every run."""
    return {
        "latency_ms": args.latency_ms,
        "pdf_min_s": args.pdf_min_s,
        "pdf_max_s": args.pdf_max_s,
        "poll_s": args.poll_interval,
        "seed": args.seed,
        "broker": args.broker,
    }


async def sweep(prefetches: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Inline and the service at each prefetch, sized to ~10 s of work each: where the design
    shows (inline is bound by prefetch / hold) and where the machine's cores cap the service."""
    rows = []
    for prefetch in prefetches:
        inline = await run_inline(
            orders=prefetch * SWEEP_ORDERS_PER_SLOT,
            prefetch=prefetch,
            **_workload(args),
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
            **_workload(args),
        )
        _print(result)
        if args.compare:
            result["compare"] = await compare(
                result, args.broker, args.compare_events, in_flight=args.in_flight
            )
            _print_compare(result, result["compare"])
        return result

    result = asyncio.run(bench())
    emit_json(result)
    complete = result["complete"] and result.get("compare", {}).get("service", {}).get(
        "complete", True
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
