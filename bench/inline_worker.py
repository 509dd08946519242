"""The inline consumer itself, in its own process (`bench/inline.py --worker`): every step of
an event (order query, invoiceItems, invoice.created, polling for the PDF, invoice.pdf_ready)
happens while its delivery is held."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from consumer.afosto.operations import OperationName, document

log = logging.getLogger("inline")


class AfostoError(Exception):
    """Afosto answered with GraphQL errors (or no data)."""


class Inline:
    """The inline consumer: every step of an event happens before its delivery is acked."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, out: AbstractExchange, poll_s: float
    ) -> None:
        self.session, self.url, self.out, self.poll_s = session, url, out, poll_s
        self.holds: list[float] = []  # seconds each delivery stayed unacked
        self.in_flight = 0

    async def call(self, operation: OperationName, variables: dict[str, Any]) -> dict[str, Any]:
        """POST one GraphQL operation; its `data`, or AfostoError."""
        payload = {"query": document(operation), "variables": variables}
        async with self.session.post(self.url, json=payload) as response:
            response.raise_for_status()
            body: dict[str, Any] = await response.json()
        if body.get("errors") or not body.get("data"):
            raise AfostoError(json.dumps(body.get("errors"))[:300])
        data: dict[str, Any] = body["data"]
        return data

    async def publish(self, event: dict[str, Any], correlation_id: str) -> None:
        """Persistent, mandatory, and awaited until the broker confirms it."""
        message = aio_pika.Message(
            json.dumps(event).encode(),
            content_type="application/json",
            message_id=event["event_id"],
            correlation_id=correlation_id,
            type=event["event_type"],
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.out.publish(message, event["event_type"], mandatory=True, timeout=10)

    async def handle(self, trigger: dict[str, Any]) -> None:
        """order → invoiceItems → invoice.created → poll pdf_url → invoice.pdf_ready."""
        event_id = str(trigger["event_id"])
        order = (await self.call("order", {"id": trigger["order_id"]}))["order"]
        ids = sorted(i for a in order["actions"] if a["action"] == "INVOICE" for i in a["ids"])
        if not ids:
            return  # nothing (left) to invoice: a duplicate or late event
        # Deterministic id so a redelivery after a crash cannot invoice the same items twice.
        invoice_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "inline:" + ",".join(ids)))
        done = await self.call("invoice_items", {"input": {"items": ids, "invoice_id": invoice_id}})
        invoice = done["invoiceItems"]["invoice"]
        await self.publish(
            _event("invoice.created", invoice["id"], event_id)
            | {"invoice": invoice, "order_ids": [o["id"] for o in invoice["orders"]]}
            | {"item_ids": ids},
            event_id,
        )
        while invoice["pdf_url"] is None:
            await asyncio.sleep(self.poll_s)  # holding the delivery: the design under test
            invoice = (await self.call("invoice", {"id": invoice_id}))["invoice"]
        await self.publish(
            _event("invoice.pdf_ready", invoice["id"], event_id)
            | {"invoice_id": invoice["id"], "invoice_number": invoice["number"]}
            | {"pdf_url": invoice["pdf_url"]},
            event_id,
        )

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        received = time.monotonic()
        self.in_flight += 1
        try:
            await self.handle(json.loads(message.body))
        except Exception:
            log.exception("event %s failed; requeued", message.message_id)
            await message.nack(requeue=True)
        else:
            await message.ack()
        finally:
            self.in_flight -= 1
        self.holds.append(time.monotonic() - received)


def _event(event_type: str, invoice_id: str, correlation_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"inline:{event_type}:{invoice_id}")),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "correlation_id": correlation_id,
    }


async def worker(
    broker: str, prefix: str, graphql_url: str, api_key: str, prefetch: int, poll_s: float
) -> None:
    """Connect, wait for SIGUSR1 (the backlog is in), consume `<prefix>.inline` until SIGTERM."""
    go, stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    connection = await aio_pika.connect_robust(broker)
    headers = {"Authorization": f"Bearer {api_key}"}
    connector = aiohttp.TCPConnector(limit=prefetch)  # one kept-alive connection per delivery
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        connection,
        aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as session,
    ):
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=prefetch)
        out = await channel.get_exchange(f"{prefix}.out")
        queue = await channel.get_queue(f"{prefix}.inline")
        inline = Inline(session, graphql_url, out, poll_s)
        print("connected", flush=True)
        await asyncio.wait(
            [asyncio.create_task(go.wait()), asyncio.create_task(stop.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
        if stop.is_set():
            return
        tag = await queue.consume(inline.on_message)
        print("consuming", flush=True)
        await stop.wait()
        await queue.cancel(tag)
        # The harness stops us once the last event arrived: its ack may still be on the way.
        for _ in range(500):
            if not inline.in_flight:
                break
            await asyncio.sleep(0.01)
        # For the harness: prefetch / mean hold is this design's throughput bound.
        holds = inline.holds
        print(f"holds {json.dumps([len(holds), sum(holds) / max(len(holds), 1)])}", flush=True)
