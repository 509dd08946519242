"""bench/profile.py's summary of py-spy's raw output: one process, steady state only."""

from __future__ import annotations

from bench.profile import summarise

RAW = [
    "process 10 (python -m consumer run);main (consumer/cli.py:3);f (consumer/a.py:1) 6",
    "process 10 (python -m consumer run);main (consumer/cli.py:3);f (consumer/a.py:2);"
    "write (aiohttp/http_writer.py:9) 3",
    "process 10 (python -m consumer run);_serve (consumer/cli.py:9);"
    "load (importlib/_bootstrap.py:1) 50",
    "process 11 (python -m bench.pipeline);g (bench/pipeline.py:1) 40",
    "not a stack line",
]


def test_counts_only_the_service_after_start_up_by_function_and_library() -> None:
    profile = summarise(RAW)
    assert profile.samples == 9
    assert profile.own == {"f (consumer/a.py)": 6, "write (aiohttp/http_writer.py)": 3}
    assert profile.total["f (consumer/a.py)"] == 9  # both of its lines, one function
    assert profile.libraries == {"consumer": 6, "aiohttp": 3}
    assert profile.pct(3) == 33.3
