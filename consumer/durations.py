"""Durations as operators write them: plain seconds or `250ms`, `30s`, `5m`, `1h`, `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def parse_duration(value: object) -> timedelta:
    """A timedelta from seconds (int, float or numeric string) or a string like `1h30m`."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if _NUMBER.fullmatch(text):
            return timedelta(seconds=float(text))
        if _WHOLE.fullmatch(text):
            seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
            return timedelta(seconds=seconds)
    raise ValueError("expected seconds or a duration such as 250ms, 30s, 5m, 1h")


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling (`90s` → `90s`, `3600s` → `1h`, `0.2s` → `200ms`)."""
    ms = round(value.total_seconds() * 1000)
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"
