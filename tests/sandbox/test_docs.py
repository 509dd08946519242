"""The curl examples in docs/sandbox.md work against a live `python -m sandbox`."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from tests.sandbox.helpers import sandbox_process

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"


def shell_blocks() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    # The first block only points $SANDBOX at the default port; the test sets its own.
    return [b for b in blocks if not b.startswith("export SANDBOX=")]


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")),
    reason="the documented examples use curl, jq and bash",
)
async def test_documented_curl_examples_run() -> None:
    async with sandbox_process("--seed", "1", "--orders", "3") as (_, base_url):
        script = "set -euo pipefail\n" + "\n".join(shell_blocks())
        shell = await asyncio.create_subprocess_exec(
            "bash", "-c", script,
            env={"SANDBOX": base_url, "PATH": "/usr/bin:/bin"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output = (await asyncio.wait_for(shell.communicate(), 60))[0].decode()
    assert shell.returncode == 0, output
    for expected in (
        '"action":"INVOICE"',
        '"number":"INV-000001"',
        "/pdf/docs-invoice-1.pdf",
        '"field":"invoice_id"',
        "200 application/pdf",
        '{"HANDLE_APPROVAL":[',
        "HTTP/1.1 429",
        "Retry-After: ",
        "\n401\n",
        '"invoiced_more_than_once":{}',
    ):
        assert expected in output, f"{expected!r} missing from:\n{output}"
