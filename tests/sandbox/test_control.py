"""The JSON control API: faults, modes, ledger and simulator steps over HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp

import sandbox
from sandbox import Sandbox


async def call(
    session: aiohttp.ClientSession, sb: Sandbox, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, f"{sb.base_url}/_control{path}", json=body) as response:
        return response.status, await response.json()


async def test_faults_change_at_runtime_and_reset() -> None:
    async with sandbox.running(seed=3) as sb, aiohttp.ClientSession() as session:
        status, config = await call(session, sb, "GET", "/faults")
        assert (status, config["seed"], config["http_503_rate"]) == (200, 3, 0.0)
        status, config = await call(
            session, sb, "PATCH", "/faults", {"http_503_rate": 1, "operations": ["mutation"]}
        )
        assert (status, config["http_503_rate"], config["operations"]) == (200, 1.0, ["mutation"])
        assert sb.faults.config.http_503_rate == 1.0
        status, error = await call(session, sb, "PATCH", "/faults", {"bogus": 1})
        assert status == 400
        assert "bogus" in error["error"]
        status, config = await call(session, sb, "POST", "/faults/reset", {"seed": 9})
        assert (config["seed"], config["http_503_rate"]) == (9, 0.0)


async def test_settings_switch_modes() -> None:
    async with sandbox.running() as sb, aiohttp.ClientSession() as session:
        status, settings = await call(
            session, sb, "PATCH", "/settings", {"lenient": True, "http_status_mode": True}
        )
        assert status == 200
        assert settings["lenient"] is True
        assert settings["http_status_mode"] is True
        assert sb.store.lenient
        assert sb.http_status_mode
        status, _ = await call(session, sb, "PATCH", "/settings", {"strict": 1})
        assert status == 400
        status, _ = await call(session, sb, "PATCH", "/settings", {"lenient": "false"})
        assert status == 400
        assert sb.store.lenient
