"""Drive messages through the routing table as the consume loop would, over JSON bytes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from handlers.errors import InvoicerError
from handlers.ports import Context, Deps, Emit, Forward, Stage
from handlers.routing import ROUTES
from tests.unit.fakes import FakeClock


@dataclass
class Run:
    emitted: list[Emit] = field(default_factory=list)
    forwarded: list[Forward] = field(default_factory=list)
    failures: list[tuple[Stage, InvoicerError]] = field(default_factory=list)

    def events(self, event_type: str) -> list[Emit]:
        return [e for e in self.emitted if e.event_type == event_type]


class Timeline(Protocol):
    """How a Forward's delay passes: `now()` in seconds, `until(due)` waits for it."""

    scale: float

    def now(self) -> float: ...
    async def until(self, due: float) -> None: ...


class FakeTime:
    """Delays pass at once: the fake clock jumps to the next message's due time."""

    scale = 1.0

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now().timestamp()

    async def until(self, due: float) -> None:
        if due > self.now():
            self.clock.advance(timedelta(seconds=due - self.now()))


class RealTime:
    """Delays are slept, scaled down (for handlers against a real Afosto-like API)."""

    def __init__(self, scale: float = 0.1) -> None:
        self.scale = scale

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def until(self, due: float) -> None:
        if due > self.now():
            await asyncio.sleep(due - self.now())


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def drive(
    deps: Deps, time: Timeline, inbox: list[tuple[Stage, bytes]], *, max_steps: int = 500
) -> Run:
    """Handle until nothing is left, earliest due message first; failures are recorded."""
    run = Run()
    queue: list[tuple[float, int, Stage, bytes]] = [
        (0.0, i, s, b) for i, (s, b) in enumerate(inbox)
    ]
    seq = len(queue)
    for _ in range(max_steps):
        if not queue:
            return run
        queue.sort()
        due, _, stage, body = queue.pop(0)
        await time.until(due)
        route = ROUTES[stage]
        try:
            message = route.parse(body, "application/json", None)
            out = await route.handle(message, deps, Context(1, None, None))
        except InvoicerError as exc:
            run.failures.append((stage, exc))
            continue
        for item in out:
            if isinstance(item, Emit):
                run.emitted.append(item)
                continue
            run.forwarded.append(item)
            wait = item.delay.total_seconds() * time.scale if item.delay else 0.0
            seq += 1
            body = item.message.model_dump_json().encode()
            queue.append((time.now() + wait, seq, item.stage, body))
    raise AssertionError(f"still busy after {max_steps} steps")


def trigger(
    order_id: str, event_id: str, event_type: str = "order.shipped", **extra: object
) -> bytes:
    return json.dumps(
        {"event_type": event_type, "order_id": order_id, "event_id": event_id, **extra}
    ).encode()
