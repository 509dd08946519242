"""The consume loop: the one place that decides each delivery's fate (DESIGN §3, §6).

parse → handle → publish the handler's outputs in order, each confirmed → ack. Failures:
- Transient (or an unexpected exception): republish the original to the wait tier for the next
  attempt (`invoicer-attempt` + 1), then ack; past max attempts, dead-letter `exhausted_reason`.
- Permanent: publish a copy to `<p>.dead` with the reason, then ack (poison: one delivery).
- Systemic: tell the controller, which pauses consumption, and park the delivery back on its
  own queue untouched through the shortest wait tier (same attempt; a fresh publish, so the
  quorum queue's delivery limit is not spent by an outage; the tier keeps the copy away until
  the pause has taken effect, instead of racing it back into this consumer or spinning it
  through other replicas).
- Unroutable (an output the broker returned: nobody bound a queue to the output exchange):
  systemic too, the same pause and park. Retried at once, every delivery would repeat its
  Afosto calls until x-delivery-limit dead-letters it; paused, the messages wait.
- PublishFailed (the broker did not confirm what we had to publish), or a bug outside the
  handler: reject with requeue, a failed delivery that the queue's x-delivery-limit counts.
An intent or PDF check for an invoice this process already announced is acked as a duplicate
without calling Afosto (see dedupe.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel

from consumer.amqp.dedupe import Confirmed, OneAtATime
from consumer.amqp.outcome import Fate, Outcome, count_event, record
from consumer.amqp.publisher import (
    ATTEMPT_HEADER,
    Publisher,
    PublishFailed,
    Unroutable,
    carried_headers,
    type_name,
)
from consumer.amqp.retries import attempt_of, retry_delay
from consumer.amqp.topology import Topology
from consumer.metrics import Metrics
from handlers.errors import DeadReason, Permanent, Systemic, Transient
from handlers.ports import Context, CrashPoint, Deps, Emit, Forward, Outgoing, Route, no_crash
from schemas.internal import Intent
from schemas.outbound import InvoiceCreated, PdfReady

log = logging.getLogger("consumer.pipeline")

# Returned to the queue too fast, an unroutable output would spin; a short pause bounds that.
REQUEUE_PAUSE = 0.5


@dataclass(frozen=True)
class LoopConfig:
    concurrency: int
    max_attempts: int
    retry_delay: timedelta
    max_message_bytes: int


def _dedupe_key(stage: str, invoice_id: str | None) -> str | None:
    return f"{stage}:{invoice_id}" if invoice_id and stage in ("intents", "pdf") else None


class Processor:
    """Decides and carries out each delivery's fate, at most `concurrency` at once."""

    def __init__(
        self,
        *,
        topology: Topology,
        deps: Deps,
        publisher: Publisher,
        config: LoopConfig,
        metrics: Metrics | None = None,
        on_systemic: Callable[[Systemic], None] = lambda exc: None,
        on_unroutable: Callable[[str], None] = lambda detail: None,
        crash: Callable[[CrashPoint], None] = no_crash,
    ) -> None:
        self._topology = topology
        self._deps = deps
        self._publisher = publisher
        self._config = config
        self._metrics = metrics
        self._on_systemic = on_systemic
        self._on_unroutable = on_unroutable
        self._crash = crash
        self._slots = asyncio.Semaphore(config.concurrency)
        self._confirmed = Confirmed()
        self._one_at_a_time = OneAtATime()
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
            metrics = self._metrics
            gauge = metrics.child(metrics.in_flight, route.stage) if metrics else None
            if gauge:
                gauge.inc()
            try:
                fate = await self._decide(message, route, queue, attempt, summary)
            except Unroutable as exc:
                fate = await self._unroutable(message, route, attempt, str(exc))
            except PublishFailed as exc:
                fate = await _give_back(message, "publish_failed", str(exc))
            except Exception as exc:  # say, an output that does not serialise: never leak it
                log.exception("unexpected error settling a %s delivery", route.stage)
                fate = await _give_back(message, "unexpected", f"{type_name(exc)}: {exc}")
            finally:
                if gauge:
                    gauge.dec()
            seconds = time.monotonic() - started
            record(self._metrics, route, queue, message, attempt, summary, fate, seconds)
            return fate.outcome

    async def _decide(
        self,
        message: AbstractIncomingMessage,
        route: Route,
        queue: str,
        attempt: int,
        summary: dict[str, str | None],
    ) -> Fate:
        try:
            if len(message.body) > self._config.max_message_bytes:
                limit = self._config.max_message_bytes
                raise Permanent("too_large", f"{len(message.body)} bytes > {limit}")
            parsed = route.parse(message.body, message.content_type, message.message_id)
            summary.update(route.summary(parsed))
        except Permanent as exc:
            return await self._dead(message, queue, exc.reason, exc.detail)
        except Exception as exc:  # a parser bug, not a bad message: retry, then give up
            log.exception("unexpected error parsing for %s", route.stage)
            error = Transient(f"unexpected {type(exc).__name__}: {exc}")
            return await self._retry(message, route, queue, attempt, error)
        key = _dedupe_key(route.stage, summary.get("invoice_id"))
        if key is None:
            return await self._handle(message, route, queue, attempt, parsed)
        async with self._one_at_a_time.hold(key):
            if key in self._confirmed:
                await _settle(message.ack())
                return Fate("acked", "duplicate", "already confirmed by this process")
            return await self._handle(message, route, queue, attempt, parsed)

    async def _handle(
        self,
        message: AbstractIncomingMessage,
        route: Route,
        queue: str,
        attempt: int,
        parsed: BaseModel,
    ) -> Fate:
        try:
            ctx = Context(attempt, message.message_id, message.correlation_id)
            outputs = await route.handle(parsed, self._deps, ctx)
        except Permanent as exc:
            return await self._dead(message, queue, exc.reason, exc.detail)
        except Systemic as exc:
            self._on_systemic(exc)
            await self._park(message, route, attempt)
            return Fate("requeued", "systemic", exc.detail)
        except Transient as exc:
            return await self._retry(message, route, queue, attempt, exc)
        except Exception as exc:  # a bug or an unforeseen library error: retry, then give up
            log.exception("unexpected error in %s handler", route.stage)
            error = Transient(f"unexpected {type(exc).__name__}: {exc}")
            return await self._retry(message, route, queue, attempt, error)
        # One at a time, each confirmed before the next is sent. Publishing invoice.created and
        # its first PDF check together (confirms awaited as one) would save a round trip, and
        # looks safe while the check waits in a tier: pdf_ready could only follow a check that
        # was confirmed. But if created is nacked or times out after the check was confirmed,
        # the intent comes back only after REQUEUE_PAUSE and a read-before-retry, and a broker
        # in trouble can take longer than the shortest tier: pdf_ready would be published
        # before invoice.created, which DESIGN §3 rules out. The confirm round trip costs
        # latency, not CPU (the bench is CPU-bound), so the order stays strict.
        for out in outputs:
            if isinstance(out, Emit):
                await self._publisher.emit(out)
                count_event(self._metrics, out, parsed)
            elif not self._already_issued(out):
                await self._publisher.forward(out)
        self._remember(outputs)
        self._crash("after_publish_before_ack")
        await _settle(message.ack())
        return Fate("acked")

    async def _unroutable(
        self, message: AbstractIncomingMessage, route: Route, attempt: int, detail: str
    ) -> Fate:
        """Pause (systemic) and park the delivery, as for Afosto refusing our key."""
        self._on_unroutable(detail)
        try:
            await self._park(message, route, attempt)
        except PublishFailed as exc:
            return await _give_back(message, "publish_failed", str(exc))
        return Fate("requeued", "unroutable", detail)

    async def _park(self, message: AbstractIncomingMessage, route: Route, attempt: int) -> None:
        """Back to its queue untouched, through the shortest tier: after the pause took effect."""
        await self._republish(message, route, attempt, delay=self._topology.tiers[0])

    def _already_issued(self, forward: Forward) -> bool:
        """An intent for an invoice this process already announced adds nothing."""
        if forward.stage != "intents" or not isinstance(forward.message, Intent):
            return False
        return _dedupe_key("intents", forward.message.invoice_id) in self._confirmed

    def _remember(self, outputs: list[Outgoing]) -> None:
        # Called only once every output of the delivery is confirmed: invoice.created comes
        # with its first PDF check, so a later intent for the invoice has nothing left to do.
        for out in outputs:
            if isinstance(out, Emit) and isinstance(out.event, InvoiceCreated):
                self._confirmed.add(f"intents:{out.event.invoice.id}")
            elif isinstance(out, Emit) and isinstance(out.event, PdfReady):
                self._confirmed.add(f"pdf:{out.event.invoice_id}")

    async def _retry(
        self,
        message: AbstractIncomingMessage,
        route: Route,
        queue: str,
        attempt: int,
        error: Transient,
    ) -> Fate:
        limit = error.max_attempts or self._config.max_attempts
        if attempt >= limit:
            detail = f"gave up after {attempt} attempts: {error.detail}"
            return await self._dead(message, queue, error.exhausted_reason, detail)
        delay = retry_delay(self._config.retry_delay, attempt, error)
        tier = await self._republish(message, route, attempt + 1, delay=delay)
        return Fate("retried", type(error).__name__, error.detail, tier)

    async def _republish(
        self,
        message: AbstractIncomingMessage,
        route: Route,
        attempt: int,
        *,
        delay: timedelta | None,
    ) -> timedelta | None:
        """Publish the delivery again to its stage as `attempt` (through a tier if delayed), ack."""
        headers = carried_headers(message)
        headers[ATTEMPT_HEADER] = attempt
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
        return tier

    async def _dead(
        self, message: AbstractIncomingMessage, queue: str, reason: DeadReason, detail: str
    ) -> Fate:
        await self._publisher.dead_letter(message, source_queue=queue, reason=reason, detail=detail)
        await _settle(message.ack())
        return Fate("dead_lettered", reason, detail)


async def _give_back(message: AbstractIncomingMessage, reason: str, detail: str) -> Fate:
    """Return the delivery to its queue as a failed attempt, counted by x-delivery-limit."""
    # reject, not nack: RabbitMQ 4.3+ counts only rejects toward the limit (docs/rabbitmq.md).
    # Left unsettled instead, the delivery would hold its prefetch slot until the channel closes.
    await asyncio.sleep(REQUEUE_PAUSE)
    await _settle(message.reject(requeue=True))
    return Fate("requeued", reason, detail)


async def _settle(action: Awaitable[object]) -> None:
    """Ack/nack; if the channel is gone the broker requeues the delivery itself."""
    try:
        await action
    except Exception as exc:
        log.warning("could not settle a delivery (%s); the broker will redeliver it", exc)
