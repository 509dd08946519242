"""One chaos run: broker user and proxy, topology and taps, sandbox, service processes,
workload and faults at once, then quiescence, the nine invariants and the figures."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sandbox
from consumer.amqp.topology import STAGES
from tests.chaos.broker import BrokerMode
from tests.chaos.driver import Driver
from tests.chaos.faults import Injector
from tests.chaos.fleet import Fleet
from tests.chaos.invariants import Check, check_all
from tests.chaos.observe import Tap
from tests.chaos.poison import attacks
from tests.chaos.rig import Rig, free_port, rig
from tests.chaos.state import Observed
from tests.chaos.tiers import Tier
from tests.chaos.workload import Plan, build_plan

QUIET_S = 3.0  # no new event or dead letter for this long, and then
STABLE_S = 7.0  # every work and wait queue empty this long (the longest wait tier is 5 s)


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
    logs_path: str

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


async def quiesce(
    sb: sandbox.Sandbox,
    out: Tap,
    dead: Tap,
    fleet: Fleet,
    poison_ids: set[str],
    depth: Callable[[], Awaitable[int]],
    within: float,
) -> bool:
    """Wait until everything promised has happened and the queues stay empty for longer than
    the longest wait tier (a message resting in a wait queue is work still under way)."""
    deadline = time.monotonic() + within
    empty_since: float | None = None
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        if not _promises_kept(sb, out, dead, fleet, poison_ids) or await depth() > 0:
            empty_since = None
        elif empty_since is None:
            empty_since = time.monotonic()
        elif time.monotonic() - empty_since >= STABLE_S:
            return True
    return False


def _promises_kept(
    sb: sandbox.Sandbox, out: Tap, dead: Tap, fleet: Fleet, poison_ids: set[str]
) -> bool:
    if time.monotonic() - max(out.last_at, dead.last_at) < QUIET_S:
        return False
    if sb.ledger.never_invoiced():
        return False
    created = {str(m.body["invoice"]["id"]) for m in out.of("invoice.created")}
    ended = {str(m.body.get("invoice_id")) for m in out.of("invoice.pdf_ready")}
    ended |= {str(m.body.get("invoice_id")) for m in dead.messages if m.reason == "pdf_timeout"}
    invoices = {i.id for i in sb.ledger.invoices}
    if not invoices <= created or not invoices <= ended:
        return False
    if not poison_ids <= {str(m.message_id) for m in dead.messages}:
        return False
    return all(life.alive and life.ready for life in fleet.current.values())


def rss_growth_mb(fleet: Fleet) -> float:
    """Largest RSS growth of one process from 10 s after its start to its end."""
    worst = 0.0
    for life in fleet.lives:
        base = next((rss for at, rss in life.rss if at - life.started >= 10), None)
        if base is not None:
            worst = max(worst, (max(rss for _, rss in life.rss) - base) / 2**20)
    return worst


async def run(tier: Tier, *, broker_mode: BrokerMode, log: Callable[[str], None] = print) -> Result:
    started = time.monotonic()
    async with rig(tier, broker_mode, log) as r:
        result = await _run(r)
    result.durations["total"] = time.monotonic() - started
    return result


async def _run(r: Rig) -> Result:
    tier, sb, broker, prefix = r.tier, r.sb, r.broker, r.prefix
    out, dead, durations = r.out, r.dead, {}
    ports = [free_port() for _ in range(tier.processes)]
    plan = build_plan(sb.store, tier)
    r.log(
        f"chaos {tier.name}: seed {tier.seed}, prefix {prefix}, broker faults via "
        f"{broker.mode}, {tier.processes} processes, {len(plan.orders)} orders, "
        f"{plan.total_events} events planned"
    )
    injector: Injector
    fleet = Fleet(
        tier.processes,
        lambda slot: r.service_env(ports[slot]),
        on_event=lambda kind, slot, detail: injector.on_fleet_event(kind, slot, detail),
    )
    fleet.steady = set(tier.steady_slots)
    fleet.armed = tier.crash_points()

    def live_ports() -> list[int]:
        return [ports[life.slot] for life in fleet.live() if life.ready]

    driver = Driver(sb, r.connection, f"{prefix}.in", plan, r.secret, live_ports, tier.seed)
    injector = Injector(tier, fleet, broker, sb, during_outage=driver.probe_webhook)
    try:  # the services never outlive the run, whatever ends it (also tests/support/children)
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
        r.log(f"  workload and faults done after {durations['traffic_and_faults']:.0f}s; quiescing")

        stage_queues = [r.topology.stage_queue(s) for s in STAGES]
        busy = [q.name for q in r.topology.queues if q.name != f"{prefix}.dead"]

        async def depth() -> int:
            stats = await broker.queue_stats(r.connection, busy)
            return sum(s.messages for s in stats)

        poison_ids = {s.message_id for s in driver.sent if s.kind == "poison"}
        q0 = time.monotonic()
        quiet = await quiesce(sb, out, dead, fleet, poison_ids, depth, tier.quiesce_s)
        durations["quiesce"] = time.monotonic() - q0
        try:
            totals = await broker.queue_totals(prefix)
        except RuntimeError:
            stats = await broker.queue_stats(r.connection, busy)
            totals = {s.name: (s.messages, s.consumers) for s in stats}
        live = len(fleet.live())
        last_activity = max(out.last_at, dead.last_at)
        await fleet.stop()
    finally:
        fleet.kill_all()
    logs_path = os.path.join(tempfile.gettempdir(), f"{prefix}.services.log")
    fleet.write_logs(logs_path)
    observed = Observed(
        ledger=sb.ledger,
        base_url=sb.base_url,
        out=out,
        dead=dead,
        sent=driver.sent,
        answers=driver.answers,
        attack_answers=driver.attack_answers,
        attacks_planned=len(attacks(r.secret)),
        log_lines=fleet.all_lines(),
        queues=totals,
        stage_queues=stage_queues,
        dead_queue=f"{prefix}.dead",
        capture_queue=f"{prefix}.capture",
        live_processes=live,
        canaries=r.canaries,
        recovery_s=max(0.0, last_activity - injector.last_fault_end),
        quiesced=quiet,
        rss_growth_mb=rss_growth_mb(fleet),
        down_windows=injector.down_windows(),
        order_queries=dict(r.api.order_queries),
        fault_errors=injector.errors,
        unfired=injector.unfired,
    )
    checks = check_all(observed)
    calls = sb.ledger.call_counts()
    return Result(tier, plan, observed, checks, injector, driver, fleet, durations, calls,
                  broker.mode, logs_path)  # fmt: skip
