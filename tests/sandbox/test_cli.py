"""`python -m sandbox`: arguments, and a real process serving until SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from sandbox.cli import main, parser, settings_from
from tests.sandbox.helpers import sandbox_process


def test_arguments_become_settings() -> None:
    args = parser().parse_args(
        [
            "--port", "0", "--seed", "7", "--orders", "4", "--lenient", "--http-status-mode",
            "--fault", "http_503_rate=0.2", "--fault", "operations=mutation,invoice",
            "--webhook-url", "http://127.0.0.1:9/hooks", "--webhook-secret", "s",
        ]
    )  # fmt: skip
    settings = settings_from(args)
    assert (settings.port, settings.seed, settings.orders) == (0, 7, 4)
    assert settings.lenient
    assert settings.http_status_mode
    assert settings.faults.http_503_rate == 0.2
    assert settings.faults.operations == ["mutation", "invoice"]
    assert "'s'" not in repr(settings), "secrets stay out of reprs"


@pytest.mark.parametrize(
    "argv",
    [
        ["--fault", "nope=1"],
        ["--fault", "http_500_rate"],
        ["--webhook-url", "http://x/hooks"],
        ["--fault", "http_500_rate=2"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "invoicer sandbox:" in capsys.readouterr().err


async def test_process_serves_preseeded_orders_until_sigterm() -> None:
    async with sandbox_process("--orders", "6", "--seed", "3") as (process, base_url):
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base_url}/_control/orders") as response:
                orders = await response.json()
            query = {"query": "{ orders(first: 100) { nodes { id } } }"}
            headers = {"Authorization": "Bearer sandbox-key"}
            async with session.post(f"{base_url}/graphql", json=query, headers=headers) as r:
                nodes = (await r.json())["data"]["orders"]["nodes"]
        assert len(orders) == len(nodes) == 6
        assert any(o["actions"].get("INVOICE") for o in orders), "some orders come shipped"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
