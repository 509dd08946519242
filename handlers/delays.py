"""Growing delays for work that waits on Afosto (early events, PDF generation)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

MIN_DELAY: Final = timedelta(seconds=1)


def growing_delay(step: int, *, first: timedelta, cap: timedelta) -> timedelta:
    """first, 2·first, 4·first, … for step 1, 2, 3, …, never above cap."""
    factor: int = 2 ** max(step - 1, 0)
    return min(first * factor, cap)


def until_deadline(delay: timedelta, now: datetime, deadline: datetime) -> timedelta:
    """`delay`, shortened so the last check lands on the deadline (at least MIN_DELAY)."""
    return max(min(delay, deadline - now), MIN_DELAY)
