"""Where the service's own CPU goes: py-spy samples of `python -m consumer run` while
bench/pipeline.py drains a backlog, summed by function (own and total %) and by library.

Records with `py-spy record --subprocesses --format raw` around the pipeline bench (the
stand-in scenario by default), keeps the service process's stacks after start-up, and prints
three tables and one JSON line. py-spy must be allowed to ptrace (it is, as root here).
Run: .venv/bin/python -m bench.profile [--events 5000] [--scenario standin] [--top 15]
     .venv/bin/python -m bench.profile --raw saved.raw   (summarise an earlier recording)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import emit_json, print_table

SERVICE = "consumer run"  # how py-spy names the service's process frame
START_UP = ("importlib", "_serve (consumer/cli")  # stacks of the start-up, not the steady state
PLUMBING = (
    "Handle._run",
    "_run_once",
    "run_forever",
    "run_until_complete",
    "<module>",
    "_run_module",
    "_run_code",
    "Runner.run",
    "run (asyncio",
    "run (consumer",
    "main (consumer/cli",
)


@dataclass
class Profile:
    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    libraries: Counter[str] = field(default_factory=Counter)

    def pct(self, n: int) -> float:
        return round(100 * n / self.samples, 1) if self.samples else 0.0


def _name(frame: str) -> str:
    """`func (path/file.py:123)` → `func (path/file.py)`: lines apart, one function."""
    frame = frame.strip()
    return frame.rsplit(":", 1)[0] + ")" if frame.endswith(")") and ":" in frame else frame


def _library(frame: str) -> str:
    match = re.search(r"\(([^:)]*)", frame)
    path = match.group(1) if match else "?"
    return path.split("/")[0] if "/" in path else path


def summarise(lines: list[str], process: str = SERVICE) -> Profile:
    """One process's steady-state samples from py-spy's raw (collapsed stack) output."""
    profile = Profile()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or not any(process in f for f in frames[:3]):
            continue
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames or any(mark in f for f in frames for mark in START_UP):
            continue
        n = int(count)
        profile.samples += n
        names = [_name(f) for f in frames]
        profile.own[names[-1]] += n
        for name in set(names):
            profile.total[name] += n
        profile.libraries[_library(frames[-1])] += n
    return profile


def report(profile: Profile, top: int) -> dict[str, object]:
    """Print the tables; return the figures for the JSON line."""
    by_own = profile.own.most_common(top)
    print_table(
        f"service process, {profile.samples} samples: top by own time",
        ["own %", "total %", "function (file)"],
        [(profile.pct(n), profile.pct(profile.total[name]), name) for name, n in by_own],
    )
    by_total = [
        (name, n) for name, n in profile.total.most_common() if not any(p in name for p in PLUMBING)
    ][:top]
    print_table(
        "top by total time (event-loop plumbing left out)",
        ["own %", "total %", "function (file)"],
        [(profile.pct(profile.own[name]), profile.pct(n), name) for name, n in by_total],
    )
    libraries = profile.libraries.most_common(top)
    print_table(
        "own time by library", ["own %", "library"], [(profile.pct(n), lib) for lib, n in libraries]
    )
    return {
        "samples": profile.samples,
        "top_own": [[name, profile.pct(n)] for name, n in by_own],
        "top_total": [[name, profile.pct(n)] for name, n in by_total],
        "libraries": {lib: profile.pct(n) for lib, n in libraries},
    }


def record(raw: Path, events: int, scenario: str, rate: int) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    bench = [sys.executable, "-m", "bench.pipeline", "--uvloop", "--ceiling-events", "0"]
    bench += ["--scenarios", scenario, "--events", str(events)]
    argv = [py_spy, "record", "--subprocesses", "--format", "raw", "-r", str(rate)]
    argv += ["-o", str(raw), "--", *bench]
    subprocess.run(argv, check=True, stdout=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--scenario", default="standin", help="a bench/pipeline.py scenario")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--raw", type=Path, default=None, help="summarise this recording")
    parser.add_argument("--keep", type=Path, default=None, help="keep the recording here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw
        if raw is None:
            raw = args.keep or Path(tmp) / "service.raw"
            record(raw, args.events, args.scenario, args.rate)
        figures = report(summarise(raw.read_text().splitlines()), args.top)
    emit_json({"bench": "profile", "scenario": args.scenario, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
