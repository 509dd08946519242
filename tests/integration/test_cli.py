"""The `invoicer` command line: topology output, check, start-up validation, delegation."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from consumer import cli
from consumer.amqp.topology import definitions
from consumer.settings import load_settings

pytestmark = pytest.mark.integration


async def _invoicer(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumer",
        *args,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_topology_definitions_are_the_pure_function(service_env: dict[str, str]) -> None:
    code, out, _ = await _invoicer(service_env, "topology", "--format", "definitions")
    assert code == 0
    assert json.loads(out) == definitions(load_settings(service_env, env_file=None).amqp)
    code, text, _ = await _invoicer(service_env, "topology")
    assert code == 0
    assert f"{service_env['INVOICER_QUEUE_PREFIX']}.triggers" in text


async def test_bad_settings_stop_start_up_naming_each(service_env: dict[str, str]) -> None:
    env = {**service_env, "INVOICER_CONCURRENCY": "0", "INVOICER_LOG_FORMAT": "xml"}
    code, _, err = await _invoicer(env, "run")
    assert code == 2
    assert "INVOICER_CONCURRENCY: must be between 1 and 1000, got 0" in err
    assert "INVOICER_LOG_FORMAT: Input should be 'json' or 'text', got xml" in err


@pytest.mark.usefixtures("cleanup")  # the sandbox declared <prefix>.in
async def test_check_passes_when_broker_and_api_answer(
    service_env: dict[str, str], afosto: sandbox.Sandbox
) -> None:
    env = {
        **service_env,
        "INVOICER_AFOSTO_URL": afosto.graphql_url,
        "INVOICER_AFOSTO_API_KEY": afosto.api_key,
    }
    code, out, _ = await _invoicer(env, "check")
    assert code == 0, out
    assert "broker  ok" in out
    assert "afosto  ok" in out


@pytest.mark.usefixtures("cleanup")
async def test_check_fails_clearly_and_keeps_secrets(
    service_env: dict[str, str], afosto: sandbox.Sandbox
) -> None:
    env = {
        **service_env,
        "INVOICER_AMQP_URL": "amqp://guest:s3cret-pw@127.0.0.1:1/",
        "INVOICER_CONNECT_TIMEOUT": "1s",
        "INVOICER_AFOSTO_URL": afosto.graphql_url.replace("://", "://proxy:pr0xy-pass@"),
        "INVOICER_AFOSTO_API_KEY": "wrong-key-123",
    }
    code, out, err = await _invoicer(env, "check")
    assert code == 1
    assert "broker  FAILED  cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/" in out
    assert "afosto  FAILED  http://proxy:***@" in out
    for secret in ("s3cret-pw", "wrong-key-123", "pr0xy-pass"):
        assert secret not in out + err


async def test_run_without_a_broker_exits_with_a_message(service_env: dict[str, str]) -> None:
    env = {
        **service_env,
        "INVOICER_AMQP_URL": "amqp://guest:s3cret-pw@127.0.0.1:1/",
        "INVOICER_CONNECT_TIMEOUT": "1s",
        "INVOICER_AFOSTO_API_KEY": "k-123456",
    }
    code, _, err = await _invoicer(env, "run")
    assert code == 1
    assert "cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/" in err
    assert "s3cret-pw" not in err


@pytest.mark.usefixtures("cleanup")
async def test_run_refuses_a_queue_declared_differently(
    service_env: dict[str, str], amqp: AbstractRobustConnection
) -> None:
    prefix = service_env["INVOICER_QUEUE_PREFIX"]
    async with amqp.channel() as channel:  # an older installation's classic queue
        await channel.declare_queue(f"{prefix}.triggers", durable=True)
    env = {**service_env, "INVOICER_AFOSTO_API_KEY": "k-123456"}
    code, _, err = await _invoicer(env, "run")
    assert code == 1
    assert f"{prefix}.triggers" in err
    assert "differs from this configuration" in err
    assert "Traceback" not in err


def test_a_missing_delegate_module_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.DELEGATES, "nothing", ("consumer.no_such_tool", "absent"))
    assert cli.main(["nothing", "--flag"]) == 2
    assert "invoicer nothing: not available (consumer.no_such_tool is missing)" in (
        capsys.readouterr().err
    )


def test_delegates_get_the_remaining_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = type(sys)("fake_tool")

    def fake_main(argv: list[str]) -> int:
        seen.append(list(argv))
        return 5

    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_tool", fake)
    monkeypatch.setitem(cli.DELEGATES, "fake", ("fake_tool", "test"))
    assert cli.main(["fake", "--orders", "3"]) == 5
    assert seen == [["--orders", "3"]]
