"""Running a bench: its event loop (asyncio or uvloop) and its named, seeded random streams."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def seeded(seed: int, stream: str) -> random.Random:
    """One named random stream per purpose, so adding draws to one never shifts another."""
    return random.Random(f"{stream}:{seed}")


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = False) -> T:
    """asyncio.run, on uvloop when asked (and installed)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            raise SystemExit("--uvloop: uvloop is not installed (pip install uvloop)") from None
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
