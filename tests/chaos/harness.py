"""One chaos run: broker user and proxy, topology and taps, sandbox, service processes,
workload and faults at once, then quiescence, the nine invariants and the figures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import uuid4

import sandbox
from consumer.amqp.declare import declare, delete
from consumer.amqp.topology import STAGES, Topology, build
from consumer.settings import load_settings
from tests.chaos.broker import Broker, BrokerMode, connect
from tests.chaos.driver import Driver
from tests.chaos.faults import Injector
from tests.chaos.fleet import Fleet
from tests.chaos.invariants import Check, check_all
from tests.chaos.observe import Tap, tap_output, tap_queue
from tests.chaos.poison import attacks
from tests.chaos.state import Observed
from tests.chaos.tiers import Tier
from tests.chaos.workload import Plan, build_plan

BROKER_URL = os.environ.get("INVOICER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUIET_S = 3.0  # no new event or dead letter for this long, and empty queues: quiescent


@dataclass
class Result:
    tier: Tier
    plan: Plan
    observed: Observed
    checks: list[Check]
    injector: Injector
    driver: Driver
    fleet: Fleet
    durations: dict[str, float]
    calls: dict[str, dict[str, int]]
    broker_mode: str

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(
    tier: Tier, prefix: str, amqp_url: str, sb: sandbox.Sandbox, secret: str, port: int
) -> dict[str, str]:
    return {
        "INVOICER_AMQP_URL": amqp_url,
        "INVOICER_QUEUE_PREFIX": prefix,
        "INVOICER_INPUT_EXCHANGE": f"{prefix}.in",
        "INVOICER_OUTPUT_EXCHANGE": f"{prefix}.out",
        "INVOICER_AFOSTO_URL": sb.graphql_url,
        "INVOICER_AFOSTO_API_KEY": sb.api_key,
        "INVOICER_WEBHOOK_SECRETS": secret,
        "INVOICER_HTTP_HOST": "127.0.0.1",
        "INVOICER_HTTP_PORT": str(port),
        # Short tiers and deadlines so a run fits in minutes; the mechanisms are the same.
        "INVOICER_WAIT_TIERS": "100ms,250ms,500ms,1s,2s,5s",
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


@asynccontextmanager
async def broker_user(broker: Broker, password: str) -> AsyncIterator[None]:
    await broker.start()
    await broker.add_user(password)
    try:
        yield
    finally:
        await broker.delete_user()
        await broker.close()


async def quiesce(
    sb: sandbox.Sandbox,
    out: Tap,
    dead: Tap,
    fleet: Fleet,
    poison_ids: set[str],
    depth: Callable[[], asyncio.Future[int]] | Callable[[], object],
    within: float,
) -> bool:
    """Wait until everything promised has happened and the queues stay empty."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        if time.monotonic() - max(out.last_at, dead.last_at) < QUIET_S:
            continue
        if sb.ledger.never_invoiced():
            continue
        created = {str(m.body["invoice"]["id"]) for m in out.of("invoice.created")}
        ended = {str(m.body.get("invoice_id")) for m in out.of("invoice.pdf_ready")}
        ended |= {str(m.body.get("invoice_id")) for m in dead.messages if m.reason == "pdf_timeout"}
        invoices = {i.id for i in sb.ledger.invoices}
        if not invoices <= created or not invoices <= ended:
            continue
        if not poison_ids <= {str(m.message_id) for m in dead.messages}:
            continue
        if not all(life.alive and life.ready for life in fleet.current.values()):
            continue
        if await depth() == 0:  # type: ignore[misc]
            return True
    return False


def rss_growth_mb(fleet: Fleet) -> float:
    """Largest RSS growth of one process from 10 s after its start to its end."""
    worst = 0.0
    for life in fleet.lives:
        base = next((rss for at, rss in life.rss if at - life.started >= 10), None)
        if base is not None:
            worst = max(worst, (max(rss for _, rss in life.rss) - base) / 2**20)
    return worst


async def run(tier: Tier, *, broker_mode: BrokerMode, log: Callable[[str], None] = print) -> Result:
    prefix = f"chaos{uuid4().hex[:6]}"
    canaries = {
        "AMQP password": f"amqpcanary{secrets.token_hex(8)}",
        "API key": f"apicanary{secrets.token_hex(8)}",
        "webhook secret": f"hookcanary{secrets.token_hex(8)}",
    }
    parts = urlsplit(BROKER_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    broker = Broker(broker_mode, host, port, f"{prefix}-svc")
    topology = build(
        load_settings(
            {
                "INVOICER_QUEUE_PREFIX": prefix,
                "INVOICER_INPUT_EXCHANGE": f"{prefix}.in",
                "INVOICER_OUTPUT_EXCHANGE": f"{prefix}.out",
                "INVOICER_WAIT_TIERS": "100ms,250ms,500ms,1s,2s,5s",
            },
            env_file=None,
        ).amqp
    )
    started = time.monotonic()
    durations: dict[str, float] = {}
    async with broker_user(broker, canaries["AMQP password"]):
        connection = await connect(BROKER_URL, f"{prefix} harness")
        taps: list[Tap] = []
        try:
            async with connection.channel() as channel:
                await declare(channel, topology)
            out = await tap_output(connection, f"{prefix}.out", f"{prefix}.capture")
            dead = await tap_queue(connection, f"{prefix}.dead")
            taps += (out, dead)
            faults = {
                "pdf_delay_min_s": tier.api_faults["pdf_delay_min_s"],
                "pdf_delay_max_s": tier.api_faults["pdf_delay_max_s"],
            }
            async with sandbox.running(
                seed=tier.seed, api_key=canaries["API key"], faults=faults
            ) as sb:
                result = await _run_with(
                    tier,
                    prefix,
                    broker,
                    connection,
                    topology,
                    sb,
                    out,
                    dead,
                    canaries,
                    durations,
                    log,
                )
        finally:
            for tap in taps:
                with contextlib.suppress(Exception):
                    await tap.stop()
            with contextlib.suppress(Exception):
                await delete(connection, topology, shared_exchanges=True)
                async with connection.channel() as channel:
                    await channel.queue_delete(f"{prefix}.capture")
            await connection.close()
    durations["total"] = time.monotonic() - started
    return result


async def _run_with(
    tier: Tier,
    prefix: str,
    broker: Broker,
    connection: object,
    topology: Topology,
    sb: sandbox.Sandbox,
    out: Tap,
    dead: Tap,
    canaries: dict[str, str],
    durations: dict[str, float],
    log: Callable[[str], None],
) -> Result:
    from aio_pika.abc import AbstractRobustConnection

    assert isinstance(connection, AbstractRobustConnection)
    user, password = broker.user, canaries["AMQP password"]
    amqp_url = f"amqp://{user}:{password}@127.0.0.1:{broker.service_port}/"
    secret = canaries["webhook secret"]
    ports = [free_port() for _ in range(tier.processes)]
    plan = build_plan(sb.store, tier)
    log(
        f"chaos {tier.name}: seed {tier.seed}, prefix {prefix}, broker faults via "
        f"{broker.mode}, {tier.processes} processes, {len(plan.orders)} orders, "
        f"{plan.total_events} events planned"
    )
    injector: Injector
    fleet = Fleet(
        tier.processes,
        lambda slot: service_env(tier, prefix, amqp_url, sb, secret, ports[slot]),
        on_event=lambda kind, slot, detail: injector.on_fleet_event(kind, slot, detail),
    )
    fleet.steady = set(tier.steady_slots)
    fleet.armed = tier.crash_points()

    def live_ports() -> list[int]:
        return [ports[life.slot] for life in fleet.live() if life.ready]

    driver = Driver(sb, connection, f"{prefix}.in", plan, secret, live_ports, tier.seed)
    injector = Injector(tier, fleet, broker, sb, during_outage=driver.probe_webhook)
    setup = time.monotonic()
    await fleet.start()
    await fleet.wait_ready(90)
    durations["start"] = time.monotonic() - setup
    t0 = time.monotonic()
    work = asyncio.gather(driver.run(t0, tier.release_s * 0.5), injector.run(t0))
    try:  # a harness that hangs must fail with its figures, not be killed by a timeout
        await asyncio.wait_for(work, max(tier.release_s, tier.fault_window_s) + 150)
    except TimeoutError:
        injector.errors.append("workload or faults still running 150 s after their window")
    injector.errors += [f"source event {i} never confirmed" for i in driver.unconfirmed]
    durations["traffic_and_faults"] = time.monotonic() - t0
    log(
        f"  workload and faults done after {durations['traffic_and_faults']:.0f}s; "
        "waiting for quiescence"
    )

    stage_queues = [topology.stage_queue(s) for s in STAGES]
    busy = [q.name for q in topology.queues if q.name != f"{prefix}.dead"]

    async def depth() -> int:
        stats = await broker.queue_stats(connection, busy)
        return sum(s.messages for s in stats)

    poison_ids = {s.message_id for s in driver.sent if s.kind == "poison"}
    q0 = time.monotonic()
    quiet = await quiesce(sb, out, dead, fleet, poison_ids, depth, tier.quiesce_s)
    durations["quiesce"] = time.monotonic() - q0
    try:
        totals = await broker.queue_totals(prefix)
    except RuntimeError:
        totals = {
            s.name: (s.messages, s.consumers) for s in await broker.queue_stats(connection, busy)
        }
    live = len(fleet.live())
    last_activity = max(out.last_at, dead.last_at)
    await fleet.stop()
    observed = Observed(
        ledger=sb.ledger,
        base_url=sb.base_url,
        out=out,
        dead=dead,
        sent=driver.sent,
        answers=driver.answers,
        attack_answers=driver.attack_answers,
        attacks_planned=len(attacks(secret)),
        log_lines=fleet.all_lines(),
        queues=totals,
        stage_queues=stage_queues,
        dead_queue=f"{prefix}.dead",
        capture_queue=f"{prefix}.capture",
        live_processes=live,
        canaries=canaries,
        recovery_s=max(0.0, last_activity - injector.last_fault_end),
        quiesced=quiet,
        rss_growth_mb=rss_growth_mb(fleet),
        down_windows=injector.down_windows(),
        fault_errors=injector.errors,
        unfired=injector.unfired,
    )
    return Result(
        tier,
        plan,
        observed,
        check_all(observed),
        injector,
        driver,
        fleet,
        durations,
        sb.ledger.call_counts(),
        broker.mode,
    )
