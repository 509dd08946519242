"""Every Prometheus metric of the service, in one registry per app instance.

One `Metrics` per app (never the global default registry), so several apps in one test process
never collide. Label values are small closed sets (queue names, stages, operations, outcomes);
nothing a client controls becomes a label, except webhook event names, which arrive signed.
"""

from __future__ import annotations

from typing import Final, Literal, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

MessageOutcome = Literal["acked", "retried", "dead_lettered", "requeued"]
AfostoOutcome = Literal[
    "ok", "not_found", "conflict", "rate_limited", "transient", "unauthorized", "error"
]

# Handler stages and Afosto calls live between a few ms and the client's total retry budget.
_FAST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# PDFs appear seconds to many minutes after the invoice; the deadline is PDF_DEADLINE.
_PDF_BUCKETS: Final = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
_UNKNOWN_EVENT_MAX_LEN: Final = 64

CONTENT_TYPE: Final[str] = CONTENT_TYPE_LATEST
_M = TypeVar("_M", Counter, Gauge, Histogram)


class Metrics:
    """The service's metrics; attribute names are the call sites' vocabulary."""

    def __init__(self) -> None:
        # Labelled children by (metric, label values): `labels()` takes a lock and validates
        # its arguments on every call, and the consume loop asks several times per message.
        self._children: dict[tuple[int, tuple[str, ...]], Counter | Gauge | Histogram] = {}
        self.registry = r = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

        # -- pipeline (recorded by the consume loop in consumer/amqp) --
        self.messages = Counter(
            "invoicer_messages",
            "Deliveries finished, by input queue and outcome (acked, retried, dead_lettered, "
            "requeued = returned untouched while paused).",
            ["queue", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "invoicer_dead_letters",
            "Messages dead-lettered, by source queue and invoicer-dead-reason.",
            ["queue", "reason"],
            registry=r,
        )
        self.handler_duration = Histogram(
            "invoicer_handler_duration_seconds",
            "Delivery to ack/retry/dead-letter, by pipeline stage (triggers, intents, pdf).",
            ["stage"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "invoicer_in_flight",
            "Deliveries currently being handled, by stage.",
            ["stage"],
            registry=r,
        )
        self.events_published = Counter(
            "invoicer_events_published",
            "Messages published with a broker confirm, by exchange role (output, input, internal) "
            "and routing key.",
            ["role", "routing_key"],
            registry=r,
        )
        self.oldest_trigger_age = Gauge(
            "invoicer_oldest_trigger_age_seconds",
            "Age of the oldest trigger waiting: age of the last trigger taken from the queue "
            "(AMQP timestamp to delivery) while the queue is non-empty, 0 when it is empty.",
            registry=r,
        )
        self.queue_messages = Gauge(
            "invoicer_queue_messages",
            "Ready messages in each input queue, as last reported by the broker.",
            ["queue"],
            registry=r,
        )

        # -- Afosto (recorded by consumer/afosto) --
        self.afosto_calls = Counter(
            "invoicer_afosto_calls",
            "Afosto GraphQL calls by operation (order, invoice, invoice_items, probe), outcome.",
            ["operation", "outcome"],
            registry=r,
        )
        self.afosto_latency = Histogram(
            "invoicer_afosto_call_duration_seconds",
            "Latency of one Afosto HTTP round trip (each try, not the retried whole).",
            ["operation"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.afosto_reads_shared = Counter(
            "invoicer_afosto_reads_shared",
            "Order reads answered by a request another caller had asked for (calls saved).",
            ["operation"],
            registry=r,
        )

        # -- invoices (recorded where invoice.created / invoice.pdf_ready are confirmed) --
        self.invoices_created = Counter(
            "invoicer_invoices_created",
            "invoice.created events confirmed by the broker, by kind (invoice, credit).",
            ["kind"],
            registry=r,
        )
        self.invoiced_amount = Counter(
            "invoicer_invoiced_amount_cents",
            "Absolute invoice totals in cents (credit totals are negative on the invoice; the "
            "kind label tells them apart), by currency and kind.",
            ["currency", "kind"],
            registry=r,
        )
        self.time_to_pdf = Histogram(
            "invoicer_time_to_pdf_seconds",
            "From invoice created_at to invoice.pdf_ready being confirmed.",
            buckets=_PDF_BUCKETS,
            registry=r,
        )

        # -- consumers and control (recorded by consumer/control.py) --
        self.consumers_registered = Gauge(
            "invoicer_consumers_registered",
            "Consumers the broker reports on each input queue (asked, not assumed).",
            ["queue"],
            registry=r,
        )
        self.resubscribes = Counter(
            "invoicer_consumer_resubscribes",
            "Watchdog re-subscriptions of a missing consumer, by queue and outcome (ok, failed).",
            ["queue", "outcome"],
            registry=r,
        )
        self.paused = Gauge(
            "invoicer_paused",
            "1 while consumption is paused for a systemic failure (see invoicer_pauses_total).",
            registry=r,
        )
        self.pauses = Counter(
            "invoicer_pauses",
            "Times consumption was paused, by reason (unauthorized, forbidden, api_down, "
            "output_unroutable).",
            ["reason"],
            registry=r,
        )
        self.probes = Counter(
            "invoicer_afosto_probes",
            "Afosto health probes made while paused, by outcome (ok, failed).",
            ["outcome"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "invoicer_afosto_circuit_open",
            "1 while the Afosto circuit is open (systemic failure, not-ready).",
            registry=r,
        )
        self.ready = Gauge(
            "invoicer_ready",
            "1 when the last readiness check passed.",
            registry=r,
        )

        # -- webhooks (recorded by consumer/http/webhooks.py) --
        self.webhook_requests = Counter(
            "invoicer_webhook_requests",
            "POST /webhooks/afosto answers, by HTTP status.",
            ["status"],
            registry=r,
        )
        self.webhook_unknown_events = Counter(
            "invoicer_webhook_unknown_events",
            "Signed webhooks with an event not mapped to a trigger (202, not enqueued).",
            ["event"],
            registry=r,
        )
        self.webhook_replays = Counter(
            "invoicer_webhook_replays",
            "Signed webhooks whose message_id was already enqueued within the replay window.",
            registry=r,
        )
        self.webhook_triggers = Counter(
            "invoicer_webhook_triggers",
            "Triggers enqueued from webhooks after a broker confirm, by event_type.",
            ["event_type"],
            registry=r,
        )

    # -- helpers that keep related series consistent --

    def child(self, metric: _M, *values: str) -> _M:
        """`metric.labels(*values)`, cached (label values must be small closed sets)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found  # type: ignore[return-value]  # keyed by metric: same type as `metric`

    def message_done(
        self, queue: str, outcome: MessageOutcome, *, reason: str | None = None
    ) -> None:
        """Count one finished delivery; a dead-letter also counts under its reason."""
        self.child(self.messages, queue, outcome).inc()
        if outcome == "dead_lettered":
            self.dead_letters.labels(queue=queue, reason=reason or "unknown").inc()

    def afosto_call(self, operation: str, outcome: AfostoOutcome, seconds: float) -> None:
        """Count one Afosto round trip and observe its latency."""
        self.child(self.afosto_calls, operation, outcome).inc()
        self.child(self.afosto_latency, operation).observe(seconds)

    def invoice_created(self, kind: str, currency: str, total_cents: int) -> None:
        """Count one confirmed invoice.created and add its absolute total."""
        self.child(self.invoices_created, kind).inc()
        self.child(self.invoiced_amount, currency, kind).inc(abs(total_cents))

    def unknown_webhook_event(self, event: str) -> None:
        """Count a signed webhook with an unmapped event (name truncated to bound the label)."""
        self.webhook_unknown_events.labels(event=event[:_UNKNOWN_EVENT_MAX_LEN]).inc()

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)
