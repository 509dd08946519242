"""The declared topology on the real broker: idempotent, and identical to the definitions."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from asyncio.subprocess import PIPE, STDOUT

import pytest
from aio_pika.abc import AbstractRobustConnection

from consumer.amqp.declare import declare
from consumer.amqp.topology import build, definitions
from consumer.settings import Settings
from tests.integration.pipeline_support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup")]


async def test_declaring_twice_changes_nothing(
    settings: Settings, amqp: AbstractRobustConnection
) -> None:
    topology = build(settings.amqp)
    async with amqp.channel() as channel:
        first = await declare(channel, topology)
        await first[topology.stage_queue("triggers")].declare()
    async with amqp.channel() as channel:
        second = await declare(channel, topology)
    assert set(first) == set(second) == {q.name for q in topology.queues}


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl on this host")
async def test_imported_definitions_match_what_the_service_declares(
    settings: Settings, amqp: AbstractRobustConnection
) -> None:
    """Import the definitions first; declaring afterwards would fail PRECONDITION_FAILED on
    any argument that differs."""
    # rabbitmqctl reads the file as the broker's user: a world-readable file, removed after.
    fd, name = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as file:
        json.dump(definitions(settings.amqp), file)
    os.chmod(name, 0o644)
    try:
        proc = await asyncio.create_subprocess_exec(
            "rabbitmqctl", "import_definitions", name, stdout=PIPE, stderr=STDOUT
        )
        output = (await proc.communicate())[0].decode(errors="replace")
    finally:
        os.unlink(name)
    if proc.returncode != 0 and "permission" in output.lower():
        pytest.skip("rabbitmqctl needs privileges here")
    assert proc.returncode == 0, output
    dead = build(settings.amqp).dead_queue

    async def imported() -> bool:
        try:
            async with amqp.channel() as channel:
                await channel.declare_queue(dead, passive=True)
        except Exception:
            return False
        return True

    # The import runs asynchronously in the broker.
    await eventually(imported, what="the broker to import the definitions")
    async with amqp.channel() as channel:
        queues = await declare(channel, build(settings.amqp))
    assert len(queues) == len(definitions(settings.amqp)["queues"])
