"""`invoicer dead-letters` on the real broker: list leaves messages alone, replay sends chosen
ones back to their source queue with a fresh attempt count and without the dead headers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from uuid import uuid4

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection, FieldValue

from consumer.amqp.declare import declare
from consumer.amqp.publisher import (
    ATTEMPT_HEADER,
    DEAD_DETAIL_HEADER,
    DEAD_REASON_HEADER,
    SOURCE_QUEUE_HEADER,
)
from consumer.amqp.topology import Topology, build
from consumer.dead_letters import Selection, inspect, replay
from consumer.dead_letters import main as dead_letters_main
from consumer.settings import Settings

pytestmark = pytest.mark.integration


async def bury(
    amqp: AbstractRobustConnection, t: Topology, stage: str, reason: str, message_id: str
) -> None:
    """Put a dead copy into <p>.dead the way the service does (confirmed, so it is there)."""
    async with amqp.channel(publisher_confirms=True) as channel:
        route = await channel.get_exchange(t.route_exchange)
        body = json.dumps({"event_type": "order.shipped", "order_id": "o1", "event_id": message_id})
        headers: dict[str, FieldValue] = {
            ATTEMPT_HEADER: 4,
            DEAD_REASON_HEADER: reason,
            DEAD_DETAIL_HEADER: f"order o1: {reason}",
            SOURCE_QUEUE_HEADER: f"{t.prefix}.{stage}",
            "traceparent": "00-abc-def-01",
        }
        message = aio_pika.Message(
            body.encode(), headers=headers, message_id=message_id, type="order.shipped"
        )
        await route.publish(message, routing_key=t.dead_queue)


async def depth(amqp: AbstractRobustConnection, queue: str, expected: int) -> int:
    """The queue's depth once it equals `expected` (or what it is after 10 s)."""
    count = -1
    for _ in range(100):
        async with amqp.channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
            count = declared.declaration_result.message_count or 0
        if count == expected:
            break
        await asyncio.sleep(0.1)
    return count


async def test_list_then_replay_only_the_chosen_reason(
    settings: Settings, amqp: AbstractRobustConnection, cleanup: list[str]
) -> None:
    t = build(settings.amqp)
    async with amqp.channel() as channel:
        await declare(channel, t)
    await bury(amqp, t, "triggers", "not_invoiceable", "e1")
    await bury(amqp, t, "triggers", "invalid_json", "e2")
    await bury(amqp, t, "pdf", "pdf_timeout", "e3")

    listed = await inspect(amqp, t, Selection())
    assert [(d.reason, d.message_id) for d in listed] == [
        ("not_invoiceable", "e1"),
        ("invalid_json", "e2"),
        ("pdf_timeout", "e3"),
    ]
    assert listed[0].source == t.stage_queue("triggers")
    assert listed[0].detail == "order o1: not_invoiceable"
    assert await depth(amqp, t.dead_queue, 3) == 3, "list must not remove anything"

    dry = await replay(amqp, t, Selection(reason="not_invoiceable"), dry_run=True)
    assert sum(dry.replayed.values()) == 1
    assert await depth(amqp, t.dead_queue, 3) == 3

    result = await replay(amqp, t, Selection(reason="not_invoiceable"))
    assert dict(result.replayed) == {"not_invoiceable": 1}
    assert result.kept == 2
    assert await depth(amqp, t.dead_queue, 2) == 2

    async with amqp.channel() as channel:
        triggers = await channel.declare_queue(t.stage_queue("triggers"), passive=True)
        back = await triggers.get(no_ack=True, fail=True)
    assert back is not None
    assert back.message_id == "e1"
    assert back.type == "order.shipped"
    headers = back.headers or {}
    assert headers[ATTEMPT_HEADER] == 1
    assert headers["traceparent"] == "00-abc-def-01"
    assert not {DEAD_REASON_HEADER, DEAD_DETAIL_HEADER, SOURCE_QUEUE_HEADER} & set(headers)

    # A quorum queue takes returned messages back asynchronously (seconds on a busy broker).
    for _ in range(50):
        rest = await inspect(amqp, t, Selection(source="pdf"))
        if rest:
            break
        await asyncio.sleep(0.2)
    assert [d.message_id for d in rest] == ["e3"]


def test_cli_names_a_missing_dead_queue(
    broker_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("INVOICER_AMQP_URL", broker_url)
    monkeypatch.setenv("INVOICER_QUEUE_PREFIX", f"nothing{uuid4().hex[:8]}")
    monkeypatch.chdir(tmp_path)  # no stray .env
    assert dead_letters_main(["list"]) == 2
    err = capsys.readouterr().err
    assert "no queue 'nothing" in err
    assert "INVOICER_QUEUE_PREFIX" in err
