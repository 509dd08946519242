"""Everything a chaos run stands on, set up and torn down in one place: a per-run broker user
(canary password) and proxy, the topology, taps on the output and dead-letter queues, the
sandbox (canary API key) behind a recording API tap, and the services' environment."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import uuid4

from aio_pika.abc import AbstractRobustConnection

import sandbox
from consumer.amqp.declare import declare, delete
from consumer.amqp.topology import Topology, build
from consumer.settings import load_settings
from tests.chaos.api_tap import ApiTap, api_tap
from tests.chaos.broker import Broker, BrokerMode, connect
from tests.chaos.leftovers import hold, sweep
from tests.chaos.observe import Tap, tap_output, tap_queue
from tests.chaos.tiers import Tier

BROKER_URL = os.environ.get("INVOICER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
WAIT_TIERS = "100ms,250ms,500ms,1s,2s,5s"


@dataclass
class Rig:
    tier: Tier
    prefix: str
    broker: Broker
    connection: AbstractRobustConnection
    topology: Topology
    sb: sandbox.Sandbox
    api: ApiTap
    out: Tap
    dead: Tap
    canaries: dict[str, str]
    log: Callable[[str], None]

    @property
    def secret(self) -> str:
        return self.canaries["webhook secret"]

    def service_env(self, port: int) -> dict[str, str]:
        """INVOICER_* for one service process; short tiers and deadlines so a run fits in
        minutes (the mechanisms are the production ones)."""
        password, tier, p = self.broker.password, self.tier, self.prefix
        return {
            "INVOICER_AMQP_URL": f"amqp://{self.broker.user}:{password}@127.0.0.1:{self.broker.service_port}/",
            "INVOICER_QUEUE_PREFIX": p,
            "INVOICER_INPUT_EXCHANGE": f"{p}.in",
            "INVOICER_OUTPUT_EXCHANGE": f"{p}.out",
            "INVOICER_AFOSTO_URL": self.api.url,
            "INVOICER_AFOSTO_API_KEY": self.sb.api_key,
            "INVOICER_WEBHOOK_SECRETS": self.secret,
            "INVOICER_HTTP_HOST": "127.0.0.1",
            "INVOICER_HTTP_PORT": str(port),
            "INVOICER_WAIT_TIERS": WAIT_TIERS,
            "INVOICER_RETRY_DELAY": "100ms",
            "INVOICER_PUBLISH_TIMEOUT": "5s",
            "INVOICER_CONNECT_TIMEOUT": "5s",
            "INVOICER_DRAIN_DEADLINE": "5s",
            "INVOICER_AFOSTO_TIMEOUT": "1500ms",
            "INVOICER_AFOSTO_RETRY_BUDGET": "3s",
            "INVOICER_PDF_DEADLINE": f"{tier.pdf_deadline_s}s",
            "INVOICER_RECHECK_DEADLINE": f"{tier.recheck_deadline_s}s",
            "INVOICER_LOG_FORMAT": "json",
            "INVOICER_LOG_LEVEL": "INFO",
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def canaries() -> dict[str, str]:
    """Random secrets per run: any of them in a log line, event or dead letter is a leak."""
    return {
        "AMQP password": f"amqpcanary{secrets.token_hex(8)}",
        "API key": f"apicanary{secrets.token_hex(8)}",
        "webhook secret": f"hookcanary{secrets.token_hex(8)}",
    }


async def sweep_leftovers(
    connection: AbstractRobustConnection, keep: str, when: str, log: Callable[[str], None]
) -> None:
    """Remove what killed runs left on the broker; a failure is reported, not fatal."""
    try:
        removed = await sweep(connection, keep=keep)
    except Exception as exc:
        log(f"  leftovers of earlier runs not swept ({when}): {exc}")
        return
    if removed["prefixes"]:
        log(f"  leftovers of earlier runs removed ({when}): {removed}")


@asynccontextmanager
async def rig(tier: Tier, mode: BrokerMode, log: Callable[[str], None]) -> AsyncIterator[Rig]:
    prefix = f"chaos{uuid4().hex[:6]}"
    with hold(prefix):  # marks this run live for the leftovers sweep of any other run
        async with _rig(prefix, tier, mode, log) as r:
            yield r


@asynccontextmanager
async def _rig(
    prefix: str, tier: Tier, mode: BrokerMode, log: Callable[[str], None]
) -> AsyncIterator[Rig]:
    secrets_ = canaries()
    parts = urlsplit(BROKER_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    own_user = shutil.which("rabbitmqctl") is not None
    if not own_user:  # a remote broker: no rabbitmqctl, so no own user and proxy faults only
        log(f"rabbitmqctl not found: broker faults via the proxy, services as {parts.username}")
        mode = "proxy"
        secrets_.pop("AMQP password")
    broker = Broker(mode, host, port, f"{prefix}-svc" if own_user else parts.username or "guest")
    broker.password = secrets_.get("AMQP password", parts.password or "guest")
    env = {
        "INVOICER_QUEUE_PREFIX": prefix,
        "INVOICER_INPUT_EXCHANGE": f"{prefix}.in",
        "INVOICER_OUTPUT_EXCHANGE": f"{prefix}.out",
        "INVOICER_WAIT_TIERS": WAIT_TIERS,
    }
    topology = build(load_settings(env, env_file=None).amqp)
    faults = {k: tier.api_faults[k] for k in ("pdf_delay_min_s", "pdf_delay_max_s")}
    await broker.start()
    if own_user:
        await broker.add_user(broker.password)
    connection = await connect(BROKER_URL, f"{prefix} harness")
    taps: list[Tap] = []
    try:
        if own_user:
            await sweep_leftovers(connection, prefix, "start", log)
        async with connection.channel() as channel:
            await declare(channel, topology)
        taps.append(await tap_output(connection, f"{prefix}.out", f"{prefix}.capture"))
        taps.append(await tap_queue(connection, f"{prefix}.dead"))
        async with (
            sandbox.running(seed=tier.seed, api_key=secrets_["API key"], faults=faults) as sb,
            api_tap(sb.base_url) as api,
        ):
            yield Rig(
                tier, prefix, broker, connection, topology, sb, api, taps[0], taps[1], secrets_, log
            )
    finally:
        await broker.ensure_up()  # first: clean-up below needs the broker
        for tap in taps:
            with contextlib.suppress(Exception):
                await tap.stop()
        with contextlib.suppress(Exception):
            await delete(connection, topology, shared_exchanges=True)
            async with connection.channel() as channel:
                await channel.queue_delete(f"{prefix}.capture")
        if own_user:
            await broker.delete_user()
            await sweep_leftovers(connection, prefix, "end", log)
        await connection.close()
        await broker.close()
