"""The consume loop's decisions, on the real broker, with a small fake route whose handler does
what the message body says (succeed, fail transiently, fail for good, delay, explode)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from pydantic import BaseModel, field_serializer

from consumer.amqp.publisher import (
    ATTEMPT_HEADER,
    DEAD_DETAIL_HEADER,
    DEAD_REASON_HEADER,
    SOURCE_QUEUE_HEADER,
)
from handlers.errors import Permanent, Systemic, Transient
from handlers.ports import Context, Deps, Emit, Forward, Outgoing, Route
from tests.integration.pipeline_support import (
    all_delivered,
    capture,
    collect_dead,
    dead_letters,
    eventually,
    service,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup", "no_crash_env")]


class Job(BaseModel):
    id: str
    do: str
    hops: int = 0


class Done(BaseModel):
    id: str
    attempt: int
    hops: int


class Unserialisable(BaseModel):
    id: str

    @field_serializer("id")
    def _refuse(self, value: str) -> str:
        raise RuntimeError("this output cannot be serialised")


calls: Counter[str] = Counter()


def parse(body: bytes, content_type: str | None, message_id: str | None) -> BaseModel:
    try:
        return Job.model_validate_json(body)
    except ValueError:
        raise Permanent("schema_violation", "not a job") from None


async def handle(message: BaseModel, deps: Deps, ctx: Context) -> list[Outgoing]:
    assert isinstance(message, Job)
    calls[message.id] += 1
    done = Emit(
        Done(id=message.id, attempt=ctx.attempt, hops=message.hops),
        message.id,
        "job.done",
        message.id,
    )
    if message.do == "ok":
        return [done]
    if message.do == "unserialisable":
        return [Emit(Unserialisable(id=message.id), message.id, "job.done", message.id)]
    if message.do == "flaky" and ctx.attempt < 3:
        raise Transient("flaky backend")
    if message.do == "flaky":
        return [done]
    if message.do == "transient":
        raise Transient("never works", max_attempts=3)
    if message.do == "permanent":
        raise Permanent("api_rejected", "Afosto said no")
    if message.do == "systemic":
        raise Systemic("Afosto invoiceItems: UNAUTHORIZED: bad key")
    if message.do == "bug":
        raise RuntimeError("handler bug")
    if message.do == "delay" and message.hops == 0:
        again = Job(id=message.id, do="delay", hops=1)
        return [
            Forward("triggers", again, f"{message.id}:1", message.id, timedelta(milliseconds=500))
        ]
    if message.do == "delay":
        return [done]
    raise AssertionError(message.do)


ROUTES = {
    "triggers": Route("triggers", parse, handle, lambda m: {"event_id": getattr(m, "id", None)})
}


async def _send(amqp: AbstractRobustConnection, exchange: str, body: bytes, msg_id: str) -> None:
    async with amqp.channel() as channel:
        ex = await channel.get_exchange(exchange)
        await ex.publish(
            aio_pika.Message(
                body,
                message_id=msg_id,
                content_type="application/json",
                headers={"x-custom": "kept"},
            ),
            routing_key="order.shipped",
        )


def _env(service_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        **service_env,
        "INVOICER_AFOSTO_URL": "http://127.0.0.1:9/graphql",
        "INVOICER_AFOSTO_API_KEY": "unused-key",
        **extra,
    }


async def test_each_outcome_is_decided_once(
    service_env: dict[str, str], amqp: AbstractRobustConnection, prefix: str
) -> None:
    calls.clear()
    jobs = {"a": "ok", "b": "flaky", "c": "transient", "d": "permanent", "e": "bug", "f": "delay"}
    async with (
        capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out,
        service(_env(service_env, INVOICER_MAX_ATTEMPTS="3"), routes=ROUTES, http=False),
    ):
        started = time.monotonic()
        for job_id, do in jobs.items():
            await _send(
                amqp, f"{prefix}.in", Job(id=job_id, do=do).model_dump_json().encode(), job_id
            )
        await _send(amqp, f"{prefix}.in", b"{not json", "g")
        await eventually(
            lambda: {m.body["id"] for m in out.messages} >= {"a", "b", "f"}, what="ok events"
        )
        await eventually(lambda: calls["c"] == 3 and calls["e"] == 3, what="retries to run out")
        elapsed = time.monotonic() - started

    done = {m.body["id"]: m.body for m in out.messages}
    assert set(done) == {"a", "b", "f"}
    assert done["a"]["attempt"] == 1
    assert done["b"]["attempt"] == 3  # two broker-delayed retries, then success
    assert done["f"]["hops"] == 1
    assert elapsed >= 0.5  # the delayed forward went through a wait tier
    dead = {d.message_id: d for d in await dead_letters(amqp, f"{prefix}.dead")}
    assert set(dead) == {"c", "d", "e", "g"}
    assert dead["c"].headers[DEAD_REASON_HEADER] == "retries_exhausted"
    assert dead["c"].headers[ATTEMPT_HEADER] == 3
    assert dead["c"].headers["x-custom"] == "kept"  # survived two broker-delayed retries
    # Broker bookkeeping from the wait tiers stays behind (x- headers belong to RabbitMQ).
    assert not [k for k in dead["c"].headers if k.startswith(("x-death", "x-first-death"))]
    assert dead["d"].headers[DEAD_REASON_HEADER] == "api_rejected"
    assert dead["d"].headers[DEAD_DETAIL_HEADER] == "Afosto said no"
    assert dead["d"].headers[SOURCE_QUEUE_HEADER] == f"{prefix}.triggers"
    assert dead["d"].headers["x-custom"] == "kept"
    assert dead["e"].headers[DEAD_REASON_HEADER] == "retries_exhausted"
    assert dead["g"].headers[DEAD_REASON_HEADER] == "schema_violation"
    assert calls["d"] == 1  # poison gets exactly one delivery
    assert calls["a"] == 1


async def test_systemic_returns_the_delivery_and_pauses(
    service_env: dict[str, str], amqp: AbstractRobustConnection, prefix: str
) -> None:
    calls.clear()
    async with service(_env(service_env), routes=ROUTES, http=False) as app:
        await _send(
            amqp, f"{prefix}.in", Job(id="s", do="systemic").model_dump_json().encode(), "s"
        )
        await eventually(lambda: app.controller.paused, what="the controller to pause")
        assert app.consumers.expected() == {}
        assert not any(app.consumers.registered().values())
    async with amqp.channel() as channel:
        queue = await channel.declare_queue(f"{prefix}.triggers", passive=True)

        # Parked through the shortest wait tier: back in its queue after the tier's delay.
        async def parked() -> bool:
            return not await all_delivered(amqp, f"{prefix}.triggers")

        await eventually(parked, what="the parked delivery")
        message = await queue.get(fail=False)
        assert message is not None
        assert message.message_id == "s"
        assert message.headers.get(ATTEMPT_HEADER) in (None, 1)  # untouched, not a retry
        # Parked by a fresh publish, not nack-requeued: the outage spends no delivery count.
        assert message.headers.get("x-delivery-count", 0) == 0
        assert not message.redelivered
        await message.nack(requeue=True)
    assert calls["s"] >= 1
    assert await dead_letters(amqp, f"{prefix}.dead") == []


async def test_an_unroutable_output_pauses_until_a_queue_is_bound(
    service_env: dict[str, str], amqp: AbstractRobustConnection, prefix: str
) -> None:
    """Nobody bound a queue to the output exchange yet: the service pauses and says why, instead
    of repeating each delivery's work until x-delivery-limit dead-letters it; once a queue is
    bound, the parked delivery goes through and its event is published."""
    calls.clear()
    env = _env(service_env, INVOICER_DELIVERY_LIMIT="2")
    async with service(env, routes=ROUTES, http=False) as app:
        await _send(amqp, f"{prefix}.in", Job(id="u", do="ok").model_dump_json().encode(), "u")
        await eventually(lambda: app.controller.paused, what="the pause")
        checks = {c.name: c for c in await app.controller.readiness()}
        assert checks["consuming"].ok is False
        assert checks["consuming"].detail == {"paused": True, "reason": "output_unroutable"}
        assert checks["afosto"].ok is True  # Afosto is not to blame
        async with capture(amqp, f"{prefix}.out", f"{prefix}.capture") as out:
            await eventually(lambda: bool(out.messages), within=30, what="the event, once bound")
            await eventually(lambda: not app.controller.paused, what="consumption to resume")
        checks = {c.name: c for c in await app.controller.readiness()}
        assert checks["consuming"].detail == {"paused": False, "reason": None}
    assert [m.body["id"] for m in out.messages] == ["u"]
    # Parked by a fresh publish each time: the delivery limit (2) was never spent on it.
    assert await dead_letters(amqp, f"{prefix}.dead") == []
    assert 2 <= calls["u"] <= 4  # the first try, a retry or two after growing pauses, success


async def test_an_output_that_does_not_serialise_is_never_acked(
    service_env: dict[str, str], amqp: AbstractRobustConnection, prefix: str
) -> None:
    """An output that cannot be serialised: the delivery goes back as a failed attempt until
    x-delivery-limit moves it to the dead queue."""
    calls.clear()
    do = "unserialisable"
    env = _env(service_env, INVOICER_DELIVERY_LIMIT="2")
    async with service(env, routes=ROUTES, http=False):
        await _send(amqp, f"{prefix}.in", Job(id="u", do=do).model_dump_json().encode(), "u")
        (found,) = await collect_dead(amqp, f"{prefix}.dead", 1)
    assert found.message_id == "u"
    assert DEAD_REASON_HEADER not in found.headers  # the broker's doing, not ours
    assert found.headers["x-first-death-reason"] == "delivery_limit"
    assert calls["u"] >= 2
    assert found.body["id"] == "u"
