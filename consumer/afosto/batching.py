"""Coalesce concurrent invoice(id) reads into one aliased GraphQL request (afosto-api.md §1.4).

Afosto limits calls, not fields, and advises batching fields into one query. The pdf stage
asks for many invoices at once under load, so `InvoiceBatcher` collects the ids asked for in
the same loop tick and sends them together, with no added latency when idle: the first id
goes out on the next tick. Up to `max_in_flight` batches are in flight; ids asked for while
all of them are busy wait and leave together, up to `max_size` per request, as soon as one
returns. Every caller's future is resolved on every path (answer, error, shutdown); a caller
cancelled while waiting just drops out, and one cancelled while its id is in flight is
ignored when the answer comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from consumer.afosto.errors import NotFound, NotSent
from handlers.errors import InvoicerError, Transient
from schemas.afosto import Invoice

MAX_BATCH: Final = 25
# What a batch yields per id: the invoice, None (not found) or that id's own error.
Result = Invoice | InvoicerError | None
Fetch = Callable[[Sequence[str]], Awaitable[Mapping[str, Result]]]


class InvoiceBatcher:
    """Turns concurrent `get(id)` calls into `fetch(ids)` calls of at most `max_size` ids."""

    def __init__(self, fetch: Fetch, *, max_size: int = MAX_BATCH, max_in_flight: int = 4) -> None:
        if max_size < 1 or max_in_flight < 1:
            raise ValueError("max_size and max_in_flight must be at least 1")
        self._fetch = fetch
        self.max_size = max_size
        self.max_in_flight = max_in_flight
        self._waiting: dict[str, list[asyncio.Future[Invoice | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Batches sent and not yet answered."""
        return len(self._tasks)

    @property
    def waiting(self) -> int:
        """Callers whose id has not been sent yet."""
        return sum(len(f) for f in self._waiting.values())

    async def get(self, invoice_id: str) -> Invoice | None:
        """The invoice, None when Afosto does not know it, or the mapped error."""
        if self._closed:
            raise NotSent("Afosto client closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Invoice | None] = loop.create_future()
        self._waiting.setdefault(invoice_id, []).append(future)
        if not self._scheduled and self.in_flight < self.max_in_flight:
            # Next tick, not now: ids asked for in this tick travel together.
            self._scheduled = True
            loop.call_soon(self._dispatch)
        try:
            return await future
        except asyncio.CancelledError:
            self._drop(invoice_id, future)
            raise

    async def close(self) -> None:
        """Fail the waiting callers (never sent: NotSent) and cancel the batches in flight."""
        self._closed = True
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(NotSent("Afosto client closed before the call"))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _drop(self, invoice_id: str, future: asyncio.Future[Invoice | None]) -> None:
        futures = self._waiting.get(invoice_id)
        if futures is not None and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiting[invoice_id]

    def _dispatch(self) -> None:
        self._scheduled = False
        while self._waiting and self.in_flight < self.max_in_flight and not self._closed:
            batch: dict[str, list[asyncio.Future[Invoice | None]]] = {}
            for invoice_id in list(self._waiting)[: self.max_size]:
                batch[invoice_id] = self._waiting.pop(invoice_id)
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._closed:
            self._dispatch()

    async def _run(self, batch: dict[str, list[asyncio.Future[Invoice | None]]]) -> None:
        results: Mapping[str, Result] = {}
        failure: BaseException | None = None
        try:
            results = await self._fetch(list(batch))
        except NotFound:
            results = dict.fromkeys(batch)  # NOT_FOUND for everybody: each gets None
        except asyncio.CancelledError:
            failure = Transient("Afosto client closed during the call")
            raise
        except Exception as exc:
            failure = exc
        finally:
            for invoice_id, futures in batch.items():
                result: Result | BaseException
                if failure is not None:
                    result = failure
                elif invoice_id in results:
                    result = results[invoice_id]
                else:  # never expected; still, no caller may wait forever
                    result = Transient(f"Afosto invoice: no answer for {invoice_id}")
                for future in futures:
                    _resolve(future, result)


def _resolve(future: asyncio.Future[Invoice | None], result: Result | BaseException) -> None:
    if future.done():  # the caller was cancelled while its id was in flight
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


__all__ = ["MAX_BATCH", "Fetch", "InvoiceBatcher", "Result"]
