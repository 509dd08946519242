"""The consume loop: the one place that decides each delivery's fate (DESIGN §3, §6).

parse → handle → publish the handler's outputs in order, each confirmed → ack. Failures:
- Transient (or an unexpected exception): republish the original to the wait tier for the next
  attempt (`invoicer-attempt` + 1), then ack; past max attempts, dead-letter `exhausted_reason`.
- Permanent: publish a copy to `<p>.dead` with the reason, then ack (poison: one delivery).
- Systemic: nack with requeue and tell the controller, which pauses consumption.
- PublishFailed (the broker did not confirm what we had to publish): nack with requeue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from aio_pika.abc import AbstractIncomingMessage

from consumer.amqp.publisher import ATTEMPT_HEADER, Publisher, PublishFailed
from consumer.amqp.topology import Topology
from consumer.metrics import Metrics
from handlers.errors import DeadReason, Permanent, RateLimited, Systemic, Transient
from handlers.ports import Context, CrashPoint, Deps, Emit, Route, no_crash
from schemas.internal import PdfCheck
from schemas.outbound import InvoiceCreated, PdfReady

log = logging.getLogger("consumer.pipeline")

Outcome = Literal["acked", "retried", "dead_lettered", "requeued"]
# Set by the broker (dead-lettering, quorum redelivery); a retry copy must start clean.
BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")
# Returned to the queue too fast, an unroutable output would spin; a short pause bounds that.
REQUEUE_PAUSE = 0.5


@dataclass(frozen=True)
class LoopConfig:
    concurrency: int
    max_attempts: int
    retry_delay: timedelta
    max_message_bytes: int


@dataclass
class _Fate:
    outcome: Outcome
    reason: DeadReason | str | None = None
    detail: str = ""
    delay: timedelta | None = None


def attempt_of(message: AbstractIncomingMessage) -> int:
    """Our own attempt counter (1 on first delivery); x-death is never consulted."""
    value = (message.headers or {}).get(ATTEMPT_HEADER)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        return max(1, int(str(value))) if value is not None else 1
    except ValueError:
        return 1


def retry_delay(base: timedelta, attempt: int, error: Transient) -> timedelta:
    """base · 2^(attempt−1), and never sooner than a rate limit asked for."""
    delay: timedelta = base * 2 ** max(attempt - 1, 0)
    if isinstance(error, RateLimited) and error.retry_after:
        delay = max(delay, timedelta(seconds=error.retry_after))
    return delay


class Processor:
    """Handles one delivery at a time per call; bounded by `concurrency` in flight."""

    def __init__(
        self,
        *,
        topology: Topology,
        deps: Deps,
        publisher: Publisher,
        config: LoopConfig,
        metrics: Metrics | None = None,
        on_systemic: Callable[[Systemic], None] = lambda exc: None,
        crash: Callable[[CrashPoint], None] = no_crash,
    ) -> None:
        self._topology = topology
        self._deps = deps
        self._publisher = publisher
        self._config = config
        self._metrics = metrics
        self._on_systemic = on_systemic
        self._crash = crash
        self._slots = asyncio.Semaphore(config.concurrency)
        self._in_flight = 0
        self._tasks: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def cancel_in_flight(self) -> None:
        """Abandon unfinished deliveries (past the drain deadline): never acked, so requeued."""
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    async def wait_idle(self) -> None:
        """Return once nothing is in flight (wrap in asyncio.timeout for a deadline)."""
        await self._idle.wait()

    def callback(self, route: Route) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        """The aio-pika consumer callback for one stage."""

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            self._in_flight += 1
            self._idle.clear()
            try:
                await self.process(message, route)
            finally:
                self._in_flight -= 1
                self._tasks.discard(task)
                if not self._in_flight:
                    self._idle.set()

        return on_message

    async def process(self, message: AbstractIncomingMessage, route: Route) -> Outcome:
        """Decide and carry out one delivery's fate; logs one line about it."""
        async with self._slots:
            queue = self._topology.stage_queue(route.stage)
            attempt = attempt_of(message)
            started = time.monotonic()
            summary: dict[str, str | None] = {"event_id": message.message_id}
            gauge = self._metrics.in_flight.labels(stage=route.stage) if self._metrics else None
            if gauge:
                gauge.inc()
            try:
                fate = await self._decide(message, route, queue, attempt, summary)
            except PublishFailed as exc:
                fate = _Fate("requeued", "publish_failed", str(exc))
                await asyncio.sleep(REQUEUE_PAUSE)
                await _settle(message.nack(requeue=True))
            finally:
                if gauge:
                    gauge.dec()
            seconds = time.monotonic() - started
            self._record(route, queue, message, attempt, summary, fate, seconds)
            return fate.outcome

    async def _decide(
        self,
        message: AbstractIncomingMessage,
        route: Route,
        queue: str,
        attempt: int,
        summary: dict[str, str | None],
    ) -> _Fate:
        try:
            if len(message.body) > self._config.max_message_bytes:
                limit = self._config.max_message_bytes
                raise Permanent("too_large", f"{len(message.body)} bytes > {limit}")
            parsed = route.parse(message.body, message.content_type, message.message_id)
            summary.update(route.summary(parsed))
            ctx = Context(attempt, message.message_id, message.correlation_id)
            outputs = await route.handle(parsed, self._deps, ctx)
        except Permanent as exc:
            return await self._dead(message, queue, exc.reason, exc.detail)
        except Systemic as exc:
            await _settle(message.nack(requeue=True))
            self._on_systemic(exc)
            return _Fate("requeued", "systemic", exc.detail)
        except Transient as exc:
            return await self._retry(message, route, queue, attempt, exc)
        except Exception as exc:  # a bug or an unforeseen library error: retry, then give up
            log.exception("unexpected error in %s handler", route.stage)
            error = Transient(f"unexpected {type(exc).__name__}: {exc}")
            return await self._retry(message, route, queue, attempt, error)
        for out in outputs:
            if isinstance(out, Emit):
                await self._publisher.emit(out)
                self._count_event(out, parsed)
            else:
                await self._publisher.forward(out)
        self._crash("after_publish_before_ack")
        await _settle(message.ack())
        return _Fate("acked")

    async def _retry(
        self,
        message: AbstractIncomingMessage,
        route: Route,
        queue: str,
        attempt: int,
        error: Transient,
    ) -> _Fate:
        limit = error.max_attempts or self._config.max_attempts
        if attempt >= limit:
            detail = f"gave up after {attempt} attempts: {error.detail}"
            return await self._dead(message, queue, error.exhausted_reason, detail)
        delay = retry_delay(self._config.retry_delay, attempt, error)
        headers = {
            k: v
            for k, v in (message.headers or {}).items()
            if isinstance(v, str | int) and not k.startswith(BROKER_HEADERS)
        }
        headers[ATTEMPT_HEADER] = attempt + 1
        tier = await self._publisher.to_stage(
            route.stage,
            message.body,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            delay=delay,
            headers=headers,
            content_type=message.content_type,
        )
        await _settle(message.ack())
        return _Fate("retried", type(error).__name__, error.detail, tier)

    async def _dead(
        self, message: AbstractIncomingMessage, queue: str, reason: DeadReason, detail: str
    ) -> _Fate:
        await self._publisher.dead_letter(message, source_queue=queue, reason=reason, detail=detail)
        await _settle(message.ack())
        return _Fate("dead_lettered", reason, detail)

    def _count_event(self, emit: Emit, parsed: object) -> None:
        if self._metrics is None:
            return
        if isinstance(emit.event, InvoiceCreated):
            inv = emit.event.invoice
            self._metrics.invoice_created(inv.kind, inv.currency, inv.total)
        elif isinstance(emit.event, PdfReady) and isinstance(parsed, PdfCheck):
            age = datetime.now(UTC) - parsed.created_at
            self._metrics.time_to_pdf.observe(max(age.total_seconds(), 0.0))

    def _record(
        self,
        route: Route,
        queue: str,
        message: AbstractIncomingMessage,
        attempt: int,
        summary: Mapping[str, str | None],
        fate: _Fate,
        seconds: float,
    ) -> None:
        if self._metrics is not None:
            self._metrics.message_done(queue, fate.outcome, reason=fate.reason)
            self._metrics.handler_duration.labels(stage=route.stage).observe(seconds)
            if route.stage == "triggers" and message.timestamp is not None:
                stamp = message.timestamp
                if stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=UTC)
                age = (datetime.now(UTC) - stamp).total_seconds()
                self._metrics.oldest_trigger_age.set(max(age, 0.0))
        level = {
            "acked": logging.INFO,
            "retried": logging.WARNING,
            "requeued": logging.WARNING,
            "dead_lettered": logging.ERROR,
        }[fate.outcome]
        log.log(
            level,
            "%s %s",
            route.stage,
            fate.outcome,
            extra={
                "stage": route.stage,
                "event_id": summary.get("event_id"),
                "order_id": summary.get("order_id"),
                "invoice_id": summary.get("invoice_id"),
                "message_id": message.message_id,
                "attempt": attempt,
                "outcome": fate.outcome,
                "reason": fate.reason,
                "detail": fate.detail[:300] or None,
                "retry_in": fate.delay.total_seconds() if fate.delay else None,
                "duration_ms": round(seconds * 1000, 1),
            },
        )


async def _settle(action: Awaitable[object]) -> None:
    """Ack/nack; if the channel is gone the broker requeues the delivery itself."""
    try:
        await action
    except Exception as exc:
        log.warning("could not settle a delivery (%s); the broker will redeliver it", exc)
