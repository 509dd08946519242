"""Process-level guarantees: a hard crash at every crash point, SIGTERM under load, and two
service instances racing on the same orders. Real broker, sandbox over HTTP."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import pytest
from aio_pika.abc import AbstractRobustConnection

import sandbox
from consumer.crash import EXIT_CODE
from consumer.settings import CRASH_POINTS
from tests.conftest import sandbox_options
from tests.integration.pipeline_support import (
    Captured,
    ServiceProcess,
    all_delivered,
    assert_exactly_once,
    capture,
    dead_letters,
    eventually,
    finish_with_fresh_process,
    service,
    settled,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup", "no_crash_env")]


@asynccontextmanager
async def process(env: Mapping[str, str], *, wait: bool = True) -> AsyncIterator[ServiceProcess]:
    """A service process that is killed however the block ends."""
    proc = await ServiceProcess(env).start(wait=wait)
    try:
        yield proc
    finally:
        await proc.kill()


@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_a_crash_at_any_point_loses_nothing_and_doubles_nothing(
    point: str,
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out:
        async with process({**full_env, "INVOICER_CRASH_AT": point}) as doomed:
            order = await afosto.simulator.create_order()
            await afosto.simulator.ship(order.id)
            code = await doomed.wait(within=30)
        assert code == EXIT_CODE, doomed.log_tail()
        assert f"INVOICER_CRASH_AT={point} reached" in "\n".join(doomed.lines)
        await finish_with_fresh_process(full_env, afosto, out)
    assert_exactly_once(afosto, out)
    assert len(afosto.ledger.invoices) == 1
    assert await dead_letters(amqp, f"{prefix}.dead") == []


@pytest.mark.parametrize("point", ["after_mutation_sent", "after_mutation_returned"])
async def test_a_crash_around_the_mutation_is_safe_in_lenient_mode(
    point: str,
    service_env: dict[str, str],
    broker_url: str,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    """Lenient Afosto answers a repeated invoice_id with the existing invoice (no conflict)."""
    options = sandbox_options(amqp_url=broker_url, exchange=f"{prefix}.in", lenient=True)
    async with sandbox.running(**options) as sb:
        env = {
            **service_env,
            "INVOICER_AFOSTO_URL": sb.graphql_url,
            "INVOICER_AFOSTO_API_KEY": sb.api_key,
        }
        async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out:
            async with process({**env, "INVOICER_CRASH_AT": point}) as doomed:
                order = await sb.simulator.create_order()
                await sb.simulator.ship(order.id)
                assert await doomed.wait(within=30) == EXIT_CODE, doomed.log_tail()
            await finish_with_fresh_process(env, sb, out)
        assert_exactly_once(sb, out)
        assert len(sb.ledger.invoices) == 1


async def test_a_message_that_crashes_the_service_every_time_ends_in_the_dead_queue(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    """No handler error to catch: the process dies on every delivery. The quorum queue's
    x-delivery-limit moves the message to <p>.dead instead of crash-looping forever."""
    env = {**full_env, "INVOICER_CRASH_AT": "after_receive", "INVOICER_DELIVERY_LIMIT": "2"}
    crashes = 0
    dead: list[Captured] = []
    for round_ in range(6):
        async with process(env, wait=round_ == 0) as proc:  # later rounds die at once
            if round_ == 0:
                order = await afosto.simulator.create_order()
                step = await afosto.simulator.ship(order.id)
            try:
                # Generous: a loaded machine took over 5 s to start a process and crash.
                assert await proc.wait(within=20) == EXIT_CODE, proc.log_tail()
                crashes += 1
            except TimeoutError:
                break  # nothing left that crashes it
        dead += await dead_letters(amqp, f"{prefix}.dead")
        if dead:
            break
    # At-least-once dead-lettering moves the message asynchronously: give the broker time.
    for _ in range(100):
        if dead:
            break
        await asyncio.sleep(0.2)
        dead += await dead_letters(amqp, f"{prefix}.dead")
    assert [d.message_id for d in dead] == [step.published[0]]
    assert dead[0].headers["x-first-death-reason"] == "delivery_limit"
    assert dead[0].headers["x-first-death-queue"] == f"{prefix}.triggers"
    assert 2 <= crashes <= 3
    assert afosto.ledger.invoices == []


async def test_sigterm_under_load_drains_and_loses_nothing(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    afosto.faults.configure(latency_ms=150.0)  # keep deliveries in flight when the signal lands
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out:
        async with process(full_env) as first:
            for _ in range(20):
                order = await afosto.simulator.create_order()
                await afosto.simulator.ship(order.id)
            await eventually(lambda: len(out.of("invoice.created")) >= 3, what="some progress")
            code = await first.terminate(within=90)  # drain deadline 30 s; a starved VM is slow
        assert code == 0, first.log_tail()
        log = "\n".join(first.lines)
        assert "drained" in log, first.log_tail()
        assert not settled(afosto, out)  # the signal really landed mid-load
        await finish_with_fresh_process(full_env, afosto, out, within=60)
    assert_exactly_once(afosto, out)
    assert len(afosto.ledger.invoices) == 20


async def test_a_stuck_drain_is_cut_off_at_the_deadline_and_nothing_is_lost(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    afosto.faults.configure(latency_ms=4000.0)  # every Afosto call outlasts the drain deadline
    env = {**full_env, "INVOICER_DRAIN_DEADLINE": "1s", "INVOICER_AFOSTO_TIMEOUT": "10s"}
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out:
        async with process(env) as first:
            for _ in range(3):
                order = await afosto.simulator.create_order()
                await afosto.simulator.ship(order.id)
            # Delivered means in flight: each handler now waits 4 s on Afosto.
            await eventually(lambda: all_delivered(amqp, f"{prefix}.triggers"), what="delivery")
            assert await first.terminate(within=20) == 0, first.log_tail()
        assert "drain deadline passed" in "\n".join(first.lines), first.log_tail()
        afosto.faults.configure(latency_ms=0.0)
        await finish_with_fresh_process(full_env, afosto, out)
    assert_exactly_once(afosto, out)
    assert len(afosto.ledger.invoices) == 3


async def test_a_second_sigterm_exits_at_once_and_nothing_is_lost(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    afosto.faults.configure(latency_ms=5000.0)
    env = {**full_env, "INVOICER_DRAIN_DEADLINE": "60s", "INVOICER_AFOSTO_TIMEOUT": "30s"}
    async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out:
        async with process(env) as first:
            order = await afosto.simulator.create_order()
            await afosto.simulator.ship(order.id)
            await eventually(lambda: all_delivered(amqp, f"{prefix}.triggers"), what="delivery")
            assert first.proc is not None
            first.proc.send_signal(signal.SIGTERM)
            await eventually(lambda: any("draining" in line for line in first.lines))
            first.proc.send_signal(signal.SIGTERM)
            assert await first.wait(within=5) == 128 + signal.SIGTERM, first.log_tail()
        afosto.faults.configure(latency_ms=0.0)
        await finish_with_fresh_process(full_env, afosto, out)
    assert_exactly_once(afosto, out)


async def test_two_instances_racing_on_the_same_orders_invoice_once(
    full_env: dict[str, str],
    afosto: sandbox.Sandbox,
    amqp: AbstractRobustConnection,
    prefix: str,
) -> None:
    """Every order gets several triggers at once while two instances consume the queues."""
    async with (
        capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out,
        service({**full_env, "INVOICER_CONCURRENCY": "8"}),
        service({**full_env, "INVOICER_CONCURRENCY": "8"}),
    ):
        orders = [await afosto.simulator.create_order() for _ in range(10)]
        steps = await asyncio.gather(*(afosto.simulator.ship(o.id) for o in orders))
        events = [p for s in steps for p in s.published if afosto.simulator.published.get(p)]
        amqp_events = [e for e in events if afosto.simulator.published[e].channel == "amqp"]
        await asyncio.gather(*(afosto.simulator.republish(e, copies=2) for e in amqp_events))
        await eventually(lambda: settled(afosto, out), within=40, what="every order invoiced")
    assert_exactly_once(afosto, out)
    assert len(afosto.ledger.invoices) == 10
