"""Self-healing: the consumer watchdog, the Afosto circuit (consumer/circuit.py), readiness.

Two failure modes make RabbitMQ consumers go silently idle or burn their retries:
- connected but not consuming (the broker cancelled the consumer, the queue was deleted, a
  restore after reconnect failed): the watchdog asks the broker how many consumers each queue
  has (a passive declare counts every replica's), checks that this process's own consumer tag
  is live, re-subscribes through the runtime, and readiness fails while it cannot;
- a systemic failure (Afosto says UNAUTHORIZED/FORBIDDEN, or has been down for a while): the
  circuit opens, consumers are paused so messages wait in their queues, a probe retries with
  backoff, and consumption resumes by itself once the probe passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from consumer.broker_inspect import QueueInspector, QueueState
from consumer.circuit import Circuit, CircuitConfig, PauseReason, Probe
from consumer.http.health import Check
from consumer.metrics import Metrics

log = logging.getLogger(__name__)

__all__ = ["ConsumerSet", "ControlConfig", "Controller", "PauseReason", "Probe"]


class ConsumerSet(Protocol):
    """What the controller needs from the consume loop (implemented in consumer/amqp)."""

    def expected(self) -> Mapping[str, int]:
        """Queue name → consumers this process should hold on it while consuming."""

    def registered(self) -> Mapping[str, bool]:
        """This process's own view: queue → its consumer tag is live on an open channel."""

    async def resubscribe(self, queue: str) -> None:
        """Consume `queue` again (re-declaring it if the broker lost it); raise if impossible."""

    async def pause(self) -> None:
        """Stop taking deliveries (cancel the consumers); deliveries in flight finish."""

    async def resume(self) -> None:
        """Take deliveries again on every queue."""


@dataclass(frozen=True)
class ControlConfig(CircuitConfig):
    watchdog_interval: float = 5.0
    # A consumer may be missing for a moment while the robust connection restores it.
    misses_before_repair: int = 2
    triggers_queue: str | None = None  # for invoicer_oldest_trigger_age_seconds


class Controller:
    """Owns the watchdog task and the circuit; use as an async context manager."""

    def __init__(
        self,
        *,
        consumers: ConsumerSet,
        inspector: QueueInspector,
        probe: Probe,
        metrics: Metrics,
        config: ControlConfig | None = None,
    ) -> None:
        self._consumers = consumers
        self._inspector = inspector
        self._metrics = metrics
        self._config = config or ControlConfig()
        self._lock = asyncio.Lock()  # pause, resume and re-subscribe never interleave
        self._circuit = Circuit(
            consumers=consumers,
            probe=probe,
            metrics=metrics,
            config=self._config,
            lock=self._lock,
            spawn=self._spawn,
            before_pause=self._expected,  # remember the queues, to watch their depth while paused
        )
        self._misses: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._known_queues: set[str] = set()
        self._inflight: dict[tuple[str, ...], asyncio.Future[dict[str, QueueState | None]]] = {}

    @property
    def circuit_open(self) -> bool:
        return self._circuit.open_reason is not None

    @property
    def paused(self) -> bool:
        return self._circuit.paused

    def systemic(self, reason: PauseReason, detail: str = "") -> None:
        """Open the circuit (idempotent): pause consumers until a probe (or, for an unroutable
        output, a growing wait) says to try again."""
        self._circuit.open(reason, detail)

    def api_result(self, ok: bool) -> None:
        """Feed every Afosto round trip here; sustained failure opens the circuit."""
        self._circuit.api_result(ok)

    async def __aenter__(self) -> Controller:
        self._spawn(self._watchdog())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- watchdog --

    def _expected(self) -> dict[str, int]:
        if self._circuit.paused:
            return {}
        expected = {q: n for q, n in self._consumers.expected().items() if n > 0}
        self._known_queues.update(expected)
        return expected

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self._config.watchdog_interval)
            try:
                await self.watch_once()
            except Exception as exc:
                log.warning("consumer watchdog could not ask the broker: %s", type(exc).__name__)

    async def watch_once(self) -> None:
        """Ask the broker once; re-subscribe queues missing a consumer for long enough."""
        expected = self._expected()
        if not expected:
            if self._known_queues:  # paused: keep queue depths visible, repair nothing
                self._record(await self._inspector.queue_states(sorted(self._known_queues)))
            return
        states = await self._inspector.queue_states(list(expected))
        local = self._consumers.registered()
        self._record(states)
        for queue, want in expected.items():
            if not self._missing(queue, states.get(queue), want, local):
                self._misses[queue] = 0
                continue
            self._misses[queue] = self._misses.get(queue, 0) + 1
            if self._misses[queue] < self._config.misses_before_repair:
                continue
            log.warning("queue %s has no consumer of ours on the broker: re-subscribing", queue)
            async with self._lock:
                if self._circuit.paused:
                    return
                try:
                    await self._consumers.resubscribe(queue)
                except Exception as exc:
                    self._metrics.resubscribes.labels(queue=queue, outcome="failed").inc()
                    log.error("re-subscribing %s failed: %s", queue, type(exc).__name__)
                    continue
            self._metrics.resubscribes.labels(queue=queue, outcome="ok").inc()
            self._misses[queue] = 0

    @staticmethod
    def _missing(
        queue: str, state: QueueState | None, want: int, local: Mapping[str, bool]
    ) -> bool:
        # The broker's count covers every replica; our own tag tells this replica apart.
        return state is None or state.consumers < want or not local.get(queue, True)

    def _record(self, states: Mapping[str, QueueState | None]) -> None:
        for queue, state in states.items():
            self._metrics.consumers_registered.labels(queue=queue).set(
                state.consumers if state else 0
            )
            self._metrics.queue_messages.labels(queue=queue).set(state.messages if state else 0)
            if queue == self._config.triggers_queue and state is not None and not state.messages:
                self._metrics.oldest_trigger_age.set(0)

    # -- readiness --

    async def readiness(self) -> Sequence[Check]:
        """Broker reachable, every consumer registered (asked of the broker), circuit closed."""
        reason = self._circuit.open_reason
        unroutable = reason == "output_unroutable"
        afosto = None if unroutable else reason
        checks = [
            Check(
                "afosto",
                afosto is None,
                {"circuit": "open" if afosto else "closed", "reason": afosto},
            ),
            # Why it is paused, when not Afosto's fault: the output exchange routes nowhere.
            Check(
                "consuming",
                not self._circuit.paused,
                {"paused": self._circuit.paused, "reason": reason if unroutable else None},
            ),
        ]
        expected = self._expected()
        try:
            states = await self._states_for_readiness(list(expected))
        except Exception as exc:
            error = {"error": type(exc).__name__}
            return [Check("broker", False, error), Check("consumers", False, error), *checks]
        self._record(states)
        local = self._consumers.registered()
        queues = {
            q: {
                "expected": want,
                "registered": s.consumers if s else 0,
                "exists": s is not None,
                "ours_live": local.get(q, True),
            }
            for q, want in expected.items()
            for s in [states.get(q)]
        }
        missing = [q for q, n in expected.items() if self._missing(q, states.get(q), n, local)]
        # Before start-up finished or once draining began, nothing is expected: not ready.
        idle = not expected and not self._circuit.paused
        detail: dict[str, Any] = {"missing": missing, "queues": queues}
        if idle:
            detail["error"] = "not consuming (starting or stopping)"
        consumers = Check("consumers", not missing and not idle, detail)
        return [Check("broker", True), consumers, *checks]

    async def _states_for_readiness(self, queues: list[str]) -> dict[str, QueueState | None]:
        # A /readyz storm shares one in-flight broker question instead of queueing many.
        key = tuple(sorted(queues))
        shared = self._inflight.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._inspector.queue_states(queues))
            self._inflight[key] = shared
            shared.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(shared)

    def _forget(self, key: tuple[str, ...], done: asyncio.Future[Any]) -> None:
        self._inflight.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have timed out already

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
