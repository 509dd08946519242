"""The demo's own view of the pipeline: a tap on the output exchange, and the PDF downloads.

It measures from the outside, like an accounting consumer would: from the fulfilment event
that made the last item of an invoice invoiceable (its shipment, or the approval of its return)
to the arrival of `invoice.created` / `invoice.pdf_ready`, in wall-clock seconds. Which of the
many triggers about an order happened to win the race does not matter to that measure."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import aiohttp
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Created:
    at: float
    kind: str
    number: str
    item_ids: tuple[str, ...]


@dataclass
class Observed:
    """Everything the tap saw; times are `time.time()` seconds."""

    created: dict[str, Created] = field(default_factory=dict)
    pdf_ready: dict[str, float] = field(default_factory=dict)
    repeated_output: int = 0  # output events seen again with an event_id already seen
    pdfs_written: int = 0
    pdf_errors: int = 0
    _event_ids: set[str] = field(default_factory=set)

    def credits(self) -> int:
        return sum(1 for c in self.created.values() if c.kind == "credit")

    def latencies(self, ready_at: Mapping[str, float]) -> tuple[list[float], list[float]]:
        """Seconds from items ready (item id -> time) to invoice.created, and to pdf_ready."""
        to_created, to_pdf = [], []
        for invoice_id, created in self.created.items():
            times = [ready_at[i] for i in created.item_ids if i in ready_at]
            if len(times) != len(created.item_ids):
                continue  # an item the demo did not announce (none expected)
            began = max(times)
            to_created.append(created.at - began)
            if invoice_id in self.pdf_ready:
                to_pdf.append(self.pdf_ready[invoice_id] - began)
        return to_created, to_pdf


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


class Watcher:
    """Consumes a copy of the output exchange into an exclusive server-named queue."""

    def __init__(
        self,
        channel: AbstractChannel,
        *,
        output_exchange: str,
        pdf_dir: Path,
        api_key: str,
    ) -> None:
        self.observed = Observed()
        self._channel = channel
        self._output = output_exchange
        self._pdf_dir = pdf_dir
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._session: aiohttp.ClientSession | None = None
        self._downloads: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(8)
        self.queue_names: list[str] = []

    async def start(self) -> None:
        """Declare the output exchange (the service declares it the same way) and bind a tap."""
        self._pdf_dir.mkdir(parents=True, exist_ok=True)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        await self._channel.set_qos(prefetch_count=500)
        exchange = await self._channel.declare_exchange(
            self._output, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue: AbstractQueue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="invoice.*")
        await queue.consume(self._on_output, no_ack=True)
        self.queue_names.append(queue.name)

    async def close(self) -> None:
        for task in list(self._downloads):
            task.cancel()
        await asyncio.gather(*self._downloads, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def wait_downloads(self) -> None:
        await asyncio.gather(*list(self._downloads), return_exceptions=True)

    async def _on_output(self, message: AbstractIncomingMessage) -> None:
        now = time.time()
        try:
            body = json.loads(message.body)
        except ValueError:
            log.warning("output event that is not JSON: %r", message.body[:100])
            return
        event_id = body.get("event_id")
        if event_id in self.observed._event_ids:
            self.observed.repeated_output += 1
            return
        self.observed._event_ids.add(event_id)
        if body.get("event_type") == "invoice.created":
            invoice = body["invoice"]
            self.observed.created.setdefault(
                invoice["id"],
                Created(now, invoice["kind"], invoice["number"], tuple(body["item_ids"])),
            )
        elif body.get("event_type") == "invoice.pdf_ready":
            self.observed.pdf_ready.setdefault(body["invoice_id"], now)
            task = asyncio.create_task(self._download(body["invoice_number"], body["pdf_url"]))
            self._downloads.add(task)
            task.add_done_callback(self._downloads.discard)

    async def _download(self, number: str, url: str) -> None:
        assert self._session is not None
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", number) or "invoice"
        async with self._limit:
            try:
                async with self._session.get(url, headers=self._headers) as response:
                    response.raise_for_status()
                    document = await response.read()
                if not document.startswith(b"%PDF"):
                    raise ValueError("not a PDF")
                await asyncio.to_thread((self._pdf_dir / f"{name}.pdf").write_bytes, document)
                self.observed.pdfs_written += 1
            except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
                self.observed.pdf_errors += 1
                log.warning("could not fetch PDF of %s: %s", number, exc)
