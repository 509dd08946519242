"""Run the handlers against a real Afosto-like API in real time (delays scaled down)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from handlers.errors import InvoicerError
from handlers.ports import Context, Deps, Emit, Stage
from handlers.routing import ROUTES
from tests.unit.harness import Run


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def drive_live(
    deps: Deps, inbox: list[tuple[Stage, bytes]], *, time_scale: float = 0.1, max_steps: int = 300
) -> Run:
    """Handle every message and what follows from it; a Forward's delay is slept × time_scale."""
    run = Run()
    loop = asyncio.get_running_loop()
    queue: list[tuple[float, int, Stage, bytes]] = [
        (0.0, i, s, b) for i, (s, b) in enumerate(inbox)
    ]
    seq = len(queue)
    for _ in range(max_steps):
        if not queue:
            return run
        queue.sort()
        due, _, stage, body = queue.pop(0)
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        route = ROUTES[stage]
        try:
            out = await route.handle(
                route.parse(body, "application/json", None), deps, Context(1, None, None)
            )
        except InvoicerError as exc:
            run.failures.append((stage, exc))
            continue
        for item in out:
            if isinstance(item, Emit):
                run.emitted.append(item)
                continue
            run.forwarded.append(item)
            wait = item.delay.total_seconds() * time_scale if item.delay else 0.0
            seq += 1
            queue.append(
                (loop.time() + wait, seq, item.stage, item.message.model_dump_json().encode())
            )
    raise AssertionError(f"still busy after {max_steps} steps")
