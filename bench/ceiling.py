"""The broker's ceiling for the service's message pattern (DESIGN §3), with no API work.

pattern: a backlog of N order.shipped events waits in the triggers queue, then a worker
process (standing in for the service: same quorum queues and arguments, persistent messages,
publisher confirms, prefetch per consumer (default = concurrency, as the service's default),
one semaphore of `concurrency`) runs
  triggers → intent (confirmed) → ack;
  intents  → "invoice.created" to the output exchange (confirmed), then a check to pdf
             (confirmed) → ack;
  pdf      → "invoice.pdf_ready" (confirmed) → ack,
i.e. 3 consumes/acks and 4 confirmed publishes per event. This process captures the output
as bench/pipeline.py does; the figure is events/s from the moment the worker consumes to the
last pdf_ready. relay: one consume → publish (confirmed) → ack hop over a pre-loaded queue.

Run: .venv/bin/python -m bench.ceiling [--events 3000] [--concurrency 64] [--prefetch P] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import asdict, dataclass

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from pamqp.common import FieldValue

from bench import runner
from bench.amqp import (
    BROKER,
    broker,
    cleanup,
    consumer_counts,
    declare_topology,
    delete_queues,
    fresh_prefix,
    publish_all,
    shipped_event,
)
from bench.capture import capturing
from bench.ceiling_worker import PAD_INTENT, padded, worker
from bench.children import child_process, wait_for
from bench.report import emit_json, ms, percentile, print_table
from bench.service import Names

DEFAULT_EVENTS = 3000
DEFAULT_RELAY = 10000
DEFAULT_CONCURRENCY = 64  # what bench/pipeline.py gives the service


@dataclass(frozen=True)
class PatternResult:
    events: int
    seconds: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    concurrency: int
    prefetch: int
    loop: str
    complete: bool


@dataclass(frozen=True)
class RelayResult:
    messages: int
    seconds: float
    messages_per_s: float
    concurrency: int
    loop: str


# -- the measurements (this process) ------------------------------------------------------


async def pattern(
    connection: AbstractConnection,
    *,
    events: int = DEFAULT_EVENTS,
    concurrency: int = DEFAULT_CONCURRENCY,
    prefetch: int | None = None,
    use_uvloop: bool = False,
    broker: str = BROKER,
    within: float = 120.0,
) -> PatternResult:
    """The 3-stage pattern with `events` events through a worker process; cleans up after."""
    names = Names(fresh_prefix("ceiling"))
    topology = names.topology()
    capture_queue = f"{names.prefix}.capture"
    argv = [sys.executable, "-m", "bench.ceiling", "--worker", names.prefix]
    prefetch = prefetch or concurrency
    argv += ["--concurrency", str(concurrency), "--prefetch", str(prefetch), "--broker", broker]
    argv += ["--uvloop"] if use_uvloop else []
    try:
        await declare_topology(connection, topology)
        sent: dict[str, float] = {}
        async with connection.channel(publisher_confirms=True) as channel:
            await publish_all(
                channel,
                names.input_exchange,
                (
                    ("order.shipped", shipped_event(f"o{i}", f"e{i}"), f"o{i}")
                    for i in range(events)
                ),
                on_publish=lambda order_id: sent.__setitem__(order_id, time.monotonic()),
            )
        async with (
            capturing(connection, names.output_exchange, capture_queue) as cap,
            child_process("ceiling-worker", argv, grace=2.0) as child,
        ):
            stages = list(topology.consumed_queues)

            async def ready() -> bool:
                counts = await consumer_counts(connection, stages)
                return all(c >= 1 for c in counts)

            # The backlog waits in the queue; the clock starts when the worker consumes.
            await wait_for(ready, within=30, what="the worker", child=child, poll=0.01)
            started = time.monotonic()
            complete = await cap.until(lambda c: len(c.ready) >= events, within)
            finished = max(cap.ready.values(), default=time.monotonic())
    finally:
        await cleanup(connection, topology, capture_queue)
    # On a starved machine the consumer poll can notice the worker only after a tiny backlog
    # is through; then the first output marks the start (a run a few ms short, never negative).
    started = min(started, min(cap.created.values(), default=started))
    seconds = finished - started
    latencies = [t - sent[o] for o, t in cap.created.items() if o in sent]
    return PatternResult(
        events=len(cap.ready),
        seconds=round(seconds, 3),
        events_per_s=round(len(cap.ready) / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=ms(percentile(latencies, 50)),
        p99_ms=ms(percentile(latencies, 99)),
        concurrency=concurrency,
        prefetch=prefetch,
        loop="uvloop" if use_uvloop else "asyncio",
        complete=complete,
    )


async def relay(
    connection: AbstractConnection,
    *,
    messages: int = DEFAULT_RELAY,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> RelayResult:
    """Consume a pre-loaded quorum queue, publish each message (confirmed) to another, ack."""
    prefix = fresh_prefix("relay")
    source, target = f"{prefix}.a", f"{prefix}.b"
    args: dict[str, FieldValue] = {"x-queue-type": "quorum"}
    try:
        async with connection.channel(publisher_confirms=True) as channel:
            for name in (source, target):
                await channel.declare_queue(name, durable=True, arguments=args)
            body = padded({"order_id": "o"}, PAD_INTENT)
            await publish_all(channel, "", ((source, body, f"m{i}") for i in range(messages)))
        publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=concurrency)
        default = publish_channel.default_exchange
        done = asyncio.Event()
        relayed = 0
        slots = asyncio.Semaphore(concurrency)

        async def hop(incoming: AbstractIncomingMessage) -> None:
            nonlocal relayed
            async with slots:
                outgoing = aio_pika.Message(
                    incoming.body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=incoming.message_id,
                )
                await default.publish(outgoing, target)
                await incoming.ack()
                relayed += 1
                if relayed >= messages:
                    done.set()

        queue = await consume_channel.get_queue(source, ensure=False)
        started = time.monotonic()
        tag = await queue.consume(hop)
        await asyncio.wait_for(done.wait(), 120)
        seconds = time.monotonic() - started
        await queue.cancel(tag)
        await consume_channel.close()
        await publish_channel.close()
    finally:
        await delete_queues(connection, source, target)
    return RelayResult(
        messages=relayed,
        seconds=round(seconds, 3),
        messages_per_s=round(relayed / seconds, 1),
        concurrency=concurrency,
        loop=runner.loop_name(),
    )


def table_rows(p: PatternResult, r: RelayResult | None) -> list[list[object]]:
    rows: list[list[object]] = [
        [
            "3-stage pattern (3 acks, 4 confirms)",
            p.events,
            p.seconds,
            p.events_per_s,
            "events/s",
            p.loop,
        ]
    ]
    if r is not None:
        rows.append(
            [
                "relay consume→publish→ack",
                r.messages,
                r.seconds,
                r.messages_per_s,
                "msg/s",
                r.loop,
            ]
        )
    return rows


HEADERS = ("measure", "count", "seconds", "rate", "unit", "loop")


async def main(args: argparse.Namespace) -> None:
    wall = time.monotonic()
    async with broker(args.broker) as connection:
        p = await pattern(
            connection,
            events=args.events,
            concurrency=args.concurrency,
            prefetch=args.prefetch,
            use_uvloop=args.uvloop,
            broker=args.broker,
        )
        r = None
        if args.relay:
            r = await relay(connection, messages=args.relay, concurrency=args.concurrency)
    print(
        f"ceiling: concurrency {args.concurrency}, prefetch {p.prefetch} per consumer, "
        "quorum queues, persistent, confirms"
    )
    if not p.complete:
        print(f"INCOMPLETE: {p.events} of {args.events} events reached pdf_ready")
    print_table("broker ceiling (no API work)", HEADERS, table_rows(p, r))
    print(f"pattern event→created p50 {p.p50_ms} ms  p99 {p.p99_ms} ms (backlog queueing)")
    print(f"\nwhole run: {time.monotonic() - wall:.0f} s")
    emit_json(
        {
            "wall_s": round(time.monotonic() - wall, 1),
            "bench": "ceiling",
            "pattern": asdict(p),
            "relay": asdict(r) if r is not None else None,
            "events_per_s": p.events_per_s,
            "relay_msg_per_s": r.messages_per_s if r is not None else None,
        }
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    p.add_argument("--relay", type=int, default=DEFAULT_RELAY, help="relay messages (0: skip)")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    p.add_argument("--prefetch", type=int, default=None, help="per consumer; default concurrency")
    p.add_argument("--uvloop", action="store_true", help="run the worker and relay on uvloop")
    p.add_argument("--broker", default=BROKER)
    p.add_argument("--worker", metavar="PREFIX", help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    if arguments.worker:
        runner.run(
            worker(
                arguments.worker,
                arguments.concurrency,
                arguments.prefetch or arguments.concurrency,
                arguments.broker,
            ),
            use_uvloop=arguments.uvloop,
        )
    else:
        runner.run(main(arguments), use_uvloop=arguments.uvloop)
