"""The broker topology as plain data (DESIGN §4), declared at start-up and printed by the CLI.

Message paths, with `<p>` the queue prefix:
- input exchange (topic) ─order.*→ `<p>.triggers`
- `<p>.route` (direct): every stage queue and `<p>.dead` are bound by their own name, so a
  forward or a dead-letter copy is published here with routing key = the target queue.
- `<p>.wait.<delay>` (fanout exchange → quorum queue with that TTL): a delayed forward keeps
  routing key = the target queue; on expiry the queue dead-letters into `<p>.route`, and since
  dead-lettering keeps the routing key, the message lands back in its target stage.
- stage queues dead-letter into `<p>.route` with key `<p>.dead` once `x-delivery-limit` is hit,
  so a message that crashes the service every time ends in `<p>.dead` instead of looping.

Portable across RabbitMQ 3.10+ and 4.x: every quorum argument whose default differs is set
explicitly (4.x defaults x-delivery-limit to 20), dead-lettering is at-least-once, nothing reads
x-death (4.x no longer trusts it from clients) and no global QoS (quorum queues refuse it).
docs/rabbitmq.md has the sources, and what changes with 4.3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from consumer.durations import format_duration
from consumer.settings import AmqpSettings
from handlers.ports import Stage

STAGES: tuple[Stage, ...] = ("triggers", "intents", "pdf")
TRIGGER_KEYS = ("order.shipped", "order.returned", "order.updated")
OUTPUT_KEYS = ("invoice.created", "invoice.pdf_ready")
VHOST = "/"
DEAD_DELIVERY_LIMIT = 1_000_000

ArgValue = str | int


@dataclass(frozen=True)
class Exchange:
    name: str
    type: Literal["topic", "direct", "fanout"]
    purpose: str


@dataclass(frozen=True)
class Queue:
    name: str
    arguments: Mapping[str, ArgValue]
    purpose: str


@dataclass(frozen=True)
class Binding:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    """Every exchange, queue and binding one installation owns or uses, plus name lookups."""

    prefix: str
    input_exchange: str
    output_exchange: str
    route_exchange: str
    dead_queue: str
    tiers: tuple[timedelta, ...]
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]

    def stage_queue(self, stage: Stage) -> str:
        return f"{self.prefix}.{stage}"

    def tier_for(self, delay: timedelta) -> timedelta:
        """The smallest tier that waits at least `delay` (the largest tier if none does)."""
        return next((t for t in self.tiers if t >= delay), self.tiers[-1])

    def wait_name(self, tier: timedelta) -> str:
        """Name of both the fanout exchange and the quorum queue of one wait tier."""
        return f"{self.prefix}.wait.{format_duration(tier)}"

    @property
    def consumed_queues(self) -> tuple[str, ...]:
        return tuple(self.stage_queue(s) for s in STAGES)

    @property
    def owned_exchanges(self) -> tuple[str, ...]:
        """Exchanges named after the prefix (the input and output exchanges may be shared)."""
        shared = {self.input_exchange, self.output_exchange}
        return tuple(e.name for e in self.exchanges if e.name not in shared)


def _quorum() -> dict[str, ArgValue]:
    return {"x-queue-type": "quorum"}


def build(amqp: AmqpSettings) -> Topology:
    """The topology for these settings: pure, so the declarer, the CLI and deploy/ agree."""
    p = amqp.queue_prefix
    route, dead = f"{p}.route", f"{p}.dead"
    # At-least-once dead-lettering (quorum only) needs reject-publish; it keeps a message in
    # its source queue until the target confirmed it, instead of dropping it on the floor.
    safe_dlx: dict[str, ArgValue] = {
        "x-dead-letter-exchange": route,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    exchanges = [
        Exchange(amqp.input_exchange, "topic", "fulfilment events in (order.*)"),
        Exchange(amqp.output_exchange, "topic", "invoice.* events out"),
        Exchange(route, "direct", "to a stage queue or the dead queue, keyed by its name"),
    ]
    queues = [
        Queue(
            f"{p}.{stage}",
            {
                **_quorum(),
                "x-delivery-limit": amqp.delivery_limit,
                "x-dead-letter-routing-key": dead,
                **safe_dlx,
            },
            purpose,
        )
        for stage, purpose in zip(
            STAGES,
            ("plan: triggers → intents", "issue: intents → invoice.created", "pdf: poll PDFs"),
            strict=True,
        )
    ]
    bindings = [Binding(amqp.input_exchange, f"{p}.triggers", key) for key in TRIGGER_KEYS]
    bindings += [Binding(route, q.name, q.name) for q in queues]
    for tier in amqp.wait_tiers:
        name = f"{p}.wait.{format_duration(tier)}"
        ttl = max(1, round(tier.total_seconds() * 1000))
        exchanges.append(Exchange(name, "fanout", f"delay {format_duration(tier)}"))
        queues.append(
            Queue(name, {**_quorum(), "x-message-ttl": ttl, **safe_dlx}, "back to its stage")
        )
        bindings.append(Binding(name, name, ""))
    # Every look at a dead letter (get + requeue) counts as a delivery; RabbitMQ 4 drops a
    # message past its default limit of 20, so the dead queue gets a practically endless one.
    dead_args = {**_quorum(), "x-delivery-limit": DEAD_DELIVERY_LIMIT}
    queues.append(Queue(dead, dead_args, "dead letters, with invoicer-dead-* headers"))
    bindings.append(Binding(route, dead, dead))
    return Topology(
        prefix=p,
        input_exchange=amqp.input_exchange,
        output_exchange=amqp.output_exchange,
        route_exchange=route,
        dead_queue=dead,
        tiers=amqp.wait_tiers,
        exchanges=tuple(exchanges),
        queues=tuple(queues),
        bindings=tuple(bindings),
    )


def render_text(topology: Topology) -> str:
    """Human-readable listing for `invoicer topology`."""
    lines = ["exchanges:"]
    lines += [f"  {e.name:<32} {e.type:<7} {e.purpose}" for e in topology.exchanges]
    lines.append("queues:")
    for q in topology.queues:
        args = ", ".join(f"{k}={v}" for k, v in q.arguments.items())
        lines.append(f"  {q.name:<32} {q.purpose}\n  {'':<32} {args}")
    lines.append("bindings:")
    lines += [
        f"  {b.exchange:<32} → {b.queue:<32} key {b.routing_key or '(any)'}"
        for b in topology.bindings
    ]
    return "\n".join(lines)


def definitions(amqp: AmqpSettings) -> dict[str, Any]:
    """RabbitMQ definitions JSON (management import / `rabbitmqctl import_definitions`)."""
    t = build(amqp)
    return {
        "exchanges": [
            {
                "name": e.name,
                "vhost": VHOST,
                "type": e.type,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for e in t.exchanges
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": VHOST,
                "durable": True,
                "auto_delete": False,
                "arguments": dict(q.arguments),
            }
            for q in t.queues
        ],
        "bindings": [
            {
                "source": b.exchange,
                "vhost": VHOST,
                "destination": b.queue,
                "destination_type": "queue",
                "routing_key": b.routing_key,
                "arguments": {},
            }
            for b in t.bindings
        ],
    }
