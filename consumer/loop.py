"""What the service process runs on: the event loop (uvloop when installed, INVOICER_EVENT_LOOP)
and the garbage collector's settings."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from consumer.settings import EventLoop

T = TypeVar("T")

# Python's default collects the young generation every 700 net allocations of container
# objects. Draining a backlog of 3,000 events (bench.pipeline, stand-in) that took ~610 ms of
# collections, with gen-2 pauses up to ~65 ms; frozen start-up objects and 5,000 took ~210 ms
# with pauses up to ~10 ms (50,000: ~160 ms but 55–75 ms pauses, bad for the p99).
GC_YOUNG_THRESHOLD = 5_000


def loop_factory(choice: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for `choice`; None means asyncio's default loop."""
    if choice == "asyncio" or (choice == "auto" and importlib.util.find_spec("uvloop") is None):
        return None
    import uvloop  # `uvloop` explicitly but missing: ImportError says what to install

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: EventLoop) -> T:
    """`asyncio.run(main)` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def loop_name() -> str:
    """`uvloop` or `asyncio`, for the start-up log line."""
    return (
        "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
    )


def tune_gc() -> None:
    """Move everything start-up made out of the collector's way and collect less often.

    Modules, classes and pydantic schemas live as long as the process; frozen, the
    collector never walks them again, which is most of a full collection's time.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
