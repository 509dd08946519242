"""The service under test (`python -m consumer run`) in its own process: the broker names of
one run, its environment, its start-up (ready once it consumes) and its /metrics."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aio_pika.abc import AbstractConnection

from bench.amqp import BROKER, consumer_counts
from bench.children import API_KEY, Child, HttpApi, child_process, wait_for
from consumer.amqp.topology import Topology, build
from consumer.settings import AmqpSettings, load_settings


@dataclass(frozen=True)
class Names:
    """The broker names one bench run uses (all under its own prefix)."""

    prefix: str

    @property
    def input_exchange(self) -> str:
        return f"{self.prefix}.in"

    @property
    def output_exchange(self) -> str:
        return f"{self.prefix}.out"

    def amqp_settings(self, wait_tiers: str | None = None) -> AmqpSettings:
        env = {
            "INVOICER_QUEUE_PREFIX": self.prefix,
            "INVOICER_INPUT_EXCHANGE": self.input_exchange,
            "INVOICER_OUTPUT_EXCHANGE": self.output_exchange,
            "INVOICER_AFOSTO_API_KEY": API_KEY,
        }
        if wait_tiers:
            env["INVOICER_WAIT_TIERS"] = wait_tiers
        return load_settings(env, env_file=None).amqp

    def topology(self, wait_tiers: str | None = None) -> Topology:
        return build(self.amqp_settings(wait_tiers))


def service_env(
    names: Names,
    api: HttpApi,
    *,
    concurrency: int,
    broker: str = BROKER,
    wait_tiers: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of `python -m consumer run` for one bench run (nothing inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
    env.update(
        {
            "INVOICER_AMQP_URL": broker,
            "INVOICER_QUEUE_PREFIX": names.prefix,
            "INVOICER_INPUT_EXCHANGE": names.input_exchange,
            "INVOICER_OUTPUT_EXCHANGE": names.output_exchange,
            "INVOICER_AFOSTO_URL": api.graphql_url,
            "INVOICER_AFOSTO_API_KEY": api.api_key,
            "INVOICER_CONCURRENCY": str(concurrency),
            "INVOICER_LOG_LEVEL": "WARNING",
            "INVOICER_LOG_FORMAT": "text",
            "INVOICER_HTTP_HOST": "127.0.0.1",
            "INVOICER_HTTP_PORT": "0",
        }
    )
    if wait_tiers:
        env["INVOICER_WAIT_TIERS"] = wait_tiers
    env.update(extra or {})
    return env


@asynccontextmanager
async def service_process(
    env: Mapping[str, str], connection: AbstractConnection, *, within: float = 30.0
) -> AsyncIterator[Child]:
    """`python -m consumer run` with exactly `env`; ready once all stage queues have a
    consumer (at LOG_LEVEL=WARNING the service logs nothing on start-up)."""
    async with service_processes(env, connection, 1, within=within) as (child,):
        yield child


@asynccontextmanager
async def service_processes(
    env: Mapping[str, str], connection: AbstractConnection, count: int, *, within: float = 30.0
) -> AsyncIterator[tuple[Child, ...]]:
    """`count` service processes (replicas competing on the same queues); the first keeps
    `env`'s HTTP port, the others take free ones. Ready once each stage queue has `count`
    consumers."""
    prefix = env["INVOICER_QUEUE_PREFIX"]
    stages = [f"{prefix}.{s}" for s in ("triggers", "intents", "pdf")]
    argv = [sys.executable, "-m", "consumer", "run"]
    async with contextlib.AsyncExitStack() as stack:
        children = []
        for n in range(count):
            own = dict(env) if n == 0 else {**env, "INVOICER_HTTP_PORT": "0"}
            name = "service" if n == 0 else f"service{n + 1}"
            children.append(
                await stack.enter_async_context(child_process(name, argv, own, grace=15.0))
            )

        async def ready() -> bool:
            return all(c >= count for c in await consumer_counts(connection, stages))

        # Polled often: benches take the moment it consumes as the start of their clock.
        await wait_for(
            ready, within=within, what="the service to consume", child=children[0], poll=0.01
        )
        yield tuple(children)


async def metric_samples(port: int, *names: str) -> list[tuple[str, dict[str, str], float]]:
    """Every labelled sample of `names` (full sample names: `x_total`, `x_sum`...) on the
    service's /metrics, as (name, labels, value)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    found = []
    for line in text.splitlines():
        name, brace, rest = line.partition("{")
        if not brace or name not in names:
            continue
        labels, value = rest.rsplit("} ", 1)
        pairs = (item.split("=", 1) for item in labels.split(",") if "=" in item)
        found.append((name, {k: v.strip('"') for k, v in pairs}, float(value)))
    return found


async def metric_sums(port: int, name: str, label: str) -> dict[str, tuple[float, float]]:
    """`label` value → (sum, count) of histogram `name` on the service's /metrics."""
    found: dict[str, list[float]] = {}
    for sample, labels, value in await metric_samples(port, f"{name}_sum", f"{name}_count"):
        slot = 0 if sample.endswith("_sum") else 1
        found.setdefault(labels[label], [0.0, 0.0])[slot] = value
    return {k: (v[0], v[1]) for k, v in found.items()}
