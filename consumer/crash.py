"""Test-only crash points (INVOICER_CRASH_AT): kill the process hard at a named moment.

`os._exit` skips every finally block and flush, like a SIGKILL or an OOM kill would, so the
integration tests can prove that no crash point loses or duplicates an invoice.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from handlers.ports import CrashPoint, no_crash

log = logging.getLogger(__name__)
EXIT_CODE = 137  # what a SIGKILLed process reports


def crash_hook(point: str | None) -> Callable[[CrashPoint], None]:
    """The hook for Deps.crash and the consume loop; a no-op unless `point` is set."""
    if point is None:
        return no_crash

    def crash(reached: CrashPoint) -> None:
        if reached == point:
            log.critical("INVOICER_CRASH_AT=%s reached: exiting with %d", point, EXIT_CODE)
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stderr.flush()
            os._exit(EXIT_CODE)

    return crash
