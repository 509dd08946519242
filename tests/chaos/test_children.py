"""The harness's service processes die with it, however it ends: a tiny harness starts a Fleet
of sleepers exactly as a chaos run does, is killed, and the sleepers must be gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS = """
import asyncio, sys
import tests.chaos.fleet
from tests.chaos.fleet import Fleet

if sys.argv[1] == "unprotected":  # the control: children started the old way
    tests.chaos.fleet.spawn_options = dict

async def main() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    fleet = Fleet(2, lambda slot: {}, command=sleeper)
    try:
        await fleet.start()
        print(" ".join(str(life.proc.pid) for life in fleet.lives), flush=True)
        await asyncio.sleep(60)
    finally:
        fleet.kill_all()

asyncio.run(main())
"""


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for a reaper (which may not exist in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_harness(mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, mode], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert harness.stdout is not None
    children = [int(pid) for pid in harness.stdout.readline().split()]
    assert len(children) == 2, children
    assert all(running(pid) for pid in children), children
    return harness, children


def gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(running(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_children_die_with_the_harness(sig: signal.Signals) -> None:
    harness, children = start_harness("protected")
    try:
        harness.send_signal(sig)
        harness.wait(10)
        assert gone_within(children, 3), f"orphans after {sig.name}: {children}"
    finally:
        harness.kill()
        for pid in children:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_the_check_sees_orphans_of_children_started_without_protection() -> None:
    """The control that makes the test above able to fail: plain children outlive a SIGKILL."""
    harness, children = start_harness("unprotected")
    try:
        harness.kill()
        harness.wait(10)
        assert not gone_within(children, 1.5)
    finally:
        for pid in children:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
