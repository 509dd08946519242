"""Shared fixtures: the real broker (fail loudly when it is absent), a unique prefix per test,
service settings for that prefix, the sandbox, and clean-up of everything a test declared."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import aio_pika
import hypothesis
import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from consumer.amqp.declare import delete
from consumer.amqp.topology import build
from consumer.settings import Settings, load_settings, redact_url

# No per-example deadline: on a loaded 2-core machine one example took 800 ms, and a deadline
# is a timed assertion; speed lives in bench/.
hypothesis.settings.register_profile("invoicer", deadline=None)
hypothesis.settings.load_profile("invoicer")

CHAOS_REPORT = "chaos_report"  # a test's user property that the summary prints (pytest -n too)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print each recorded chaos report at the end, pass or fail: worker output is not shown."""
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in getattr(report, "user_properties", []):
                if name == CHAOS_REPORT:
                    terminalreporter.write_sep("-", f"chaos report: {report.nodeid}")
                    terminalreporter.write_line(str(value))


BROKER_URL = os.environ.get("INVOICER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# Small tiers and delays keep the integration suite fast; production uses seconds to an hour.
FAST_ENV = {
    "INVOICER_WAIT_TIERS": "50ms,100ms,200ms,500ms,1s,2s",
    "INVOICER_RETRY_DELAY": "50ms",
    "INVOICER_PUBLISH_TIMEOUT": "5s",
    "INVOICER_DRAIN_DEADLINE": "10s",
    "INVOICER_PDF_DEADLINE": "20s",
    "INVOICER_RECHECK_DEADLINE": "3s",
    "INVOICER_CONCURRENCY": "16",
    "INVOICER_HTTP_HOST": "127.0.0.1",
    "INVOICER_HTTP_PORT": "0",
    "INVOICER_LOG_LEVEL": "INFO",
    "INVOICER_LOG_FORMAT": "text",
}


def _unreachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 3):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The test broker's URL; the test FAILS (never skips) when RabbitMQ does not answer."""
    problem = _unreachable(BROKER_URL)
    if problem:
        pytest.fail(
            f"RabbitMQ is not reachable at {redact_url(BROKER_URL)} ({problem}). Integration "
            "tests need it: start it (`rabbitmq-server -detached`, or `docker compose -f "
            "deploy/compose.yaml up -d rabbitmq`) or point INVOICER_TEST_AMQP_URL at one.",
            pytrace=False,
        )
    return BROKER_URL


@pytest.fixture
def prefix() -> str:
    """A queue/exchange prefix no other test or run uses."""
    return f"t{uuid4().hex[:8]}"


@pytest.fixture
def service_env(prefix: str, broker_url: str) -> dict[str, str]:
    """INVOICER_* variables for a service under test (no Afosto URL/key yet)."""
    return {
        "INVOICER_AMQP_URL": broker_url,
        "INVOICER_QUEUE_PREFIX": prefix,
        "INVOICER_INPUT_EXCHANGE": f"{prefix}.in",
        "INVOICER_OUTPUT_EXCHANGE": f"{prefix}.out",
        **FAST_ENV,
    }


@pytest.fixture
def settings(service_env: dict[str, str]) -> Settings:
    return load_settings(service_env, env_file=None)


@pytest.fixture
async def amqp(broker_url: str) -> AsyncIterator[AbstractRobustConnection]:
    """The test's own broker connection (never shared with the service under test)."""
    connection = await aio_pika.connect_robust(broker_url)
    async with connection:
        yield connection


@pytest.fixture
async def cleanup(settings: Settings, amqp: AbstractRobustConnection) -> AsyncIterator[list[str]]:
    """Deletes the prefix's topology (and any extra queue names appended) after the test."""
    extra: list[str] = []
    yield extra
    await delete(amqp, build(settings.amqp), shared_exchanges=True)
    for name in extra:
        async with amqp.channel() as channel:
            await channel.queue_delete(name)


def sandbox_options(**overrides: Any) -> dict[str, Any]:
    """Sandbox settings for tests: short PDF delays, deterministic seed."""
    faults = {"pdf_delay_min_s": 0.05, "pdf_delay_max_s": 0.3, **overrides.pop("faults", {})}
    return {"seed": 7, "faults": faults, **overrides}


@pytest.fixture
async def afosto(broker_url: str, prefix: str) -> AsyncIterator[sandbox.Sandbox]:
    """A running sandbox whose simulator publishes to this test's input exchange."""
    async with sandbox.running(
        **sandbox_options(amqp_url=broker_url, exchange=f"{prefix}.in")
    ) as sb:
        yield sb


@pytest.fixture
def full_env(service_env: dict[str, str], afosto: sandbox.Sandbox) -> dict[str, str]:
    """Service variables pointing at the sandbox."""
    return {
        **service_env,
        "INVOICER_AFOSTO_URL": afosto.graphql_url,
        "INVOICER_AFOSTO_API_KEY": afosto.api_key,
    }


@pytest.fixture
def no_crash_env() -> Iterator[None]:
    """Make sure a stray INVOICER_CRASH_AT in the developer's shell cannot leak in."""
    saved = os.environ.pop("INVOICER_CRASH_AT", None)
    yield
    if saved is not None:
        os.environ["INVOICER_CRASH_AT"] = saved
