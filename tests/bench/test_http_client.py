"""bench/http_client.py at a tiny size: both clients answer, and the JSON line carries the
figures docs/performance.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_http_client_bench_compares_both_clients() -> None:
    argv = [sys.executable, "-m", "bench.http_client", "--requests", "100", "--rounds", "1"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == "http_client"
    assert set(result["clients"]) == {"aiohttp", "http11"}
    for figures in result["clients"].values():
        assert figures["cpu_us_per_request"] > 0
        assert figures["requests_per_s"] > 0
        assert figures["rounds"] == 1
    assert result["cpu_ratio_http11_to_aiohttp"] > 0
    assert "http11 spends" in done.stdout
