"""Drive messages through the routing table as the consume loop would, over JSON bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

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


async def drive(
    deps: Deps, clock: FakeClock, inbox: list[tuple[Stage, bytes]], *, max_steps: int = 500
) -> Run:
    """Handle until nothing is left; delays advance the fake clock (earliest message first)."""
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
        now = clock.now().timestamp()
        if due > now:
            clock.advance(timedelta(seconds=due - now))
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
            else:
                run.forwarded.append(item)
                wait = item.delay.total_seconds() if item.delay else 0.0
                seq += 1
                queue.append(
                    (
                        clock.now().timestamp() + wait,
                        seq,
                        item.stage,
                        item.message.model_dump_json().encode(),
                    )
                )
    raise AssertionError(f"still busy after {max_steps} steps")


def trigger(
    order_id: str, event_id: str, event_type: str = "order.shipped", **extra: object
) -> bytes:
    import json

    return json.dumps(
        {"event_type": event_type, "order_id": order_id, "event_id": event_id, **extra}
    ).encode()
