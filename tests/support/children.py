"""Child processes that die with whoever started them (the chaos harness, a test): each starts
in its own session (one process group to kill, out of reach of the terminal's Ctrl-C) and, on
Linux, with PR_SET_PDEATHSIG set to SIGKILL, so even a SIGKILL of the parent takes them down."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Resolved before any fork: the child then only makes the call (preexec_fn runs between fork
# and exec, where loading a library could deadlock on a lock another thread held).
_prctl: Any = None
if sys.platform == "linux":
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
        _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _prctl.restype = ctypes.c_int


def die_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: SIGKILL this child when `parent` dies (the kernel watches the thread
    that forked it, here the event loop's)."""

    def preexec() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def spawn_options() -> dict[str, Any]:
    """Keyword arguments for `asyncio.create_subprocess_exec` / `subprocess.Popen`."""
    return {"start_new_session": True, "preexec_fn": die_with(os.getpid())}


_spawned: set[int] = set()


def track(pid: int) -> None:
    """Remember a child so that an interpreter exit that skipped the harness's clean-up
    (a pytest timeout, sys.exit from a signal handler) still kills it."""
    _spawned.add(pid)


@atexit.register
def _kill_leftovers() -> None:
    for pid in list(_spawned):
        try:  # only a child still running (not reaped, so its pid is still ours)
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                continue
        except ChildProcessError:
            continue
        kill_group(pid)


def kill_group(pid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal the child's whole process group (its pid: it leads its own session); False if
    it is gone already."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
