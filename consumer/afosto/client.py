"""The Afosto GraphQL client: one session, typed errors, declared retries, a shared limiter.

Queries are retried in-process with tenacity on Transient (jittered exponential, capped in
tries and total time, Retry-After honoured). The invoiceItems mutation is retried only when
the request provably never left (NotSent) or Afosto refused it for rate (RateLimited); an
unknown outcome is raised as Conflict so the issue handler reads before it retries.
Concurrent invoice(id) reads share aliased requests (batching.py): one batch is one call for
the limiter, the metrics (operation "invoice") and the retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import orjson
from pydantic import SecretStr, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from consumer.afosto.answers import Answer, model, per_alias, read_answer
from consumer.afosto.batching import InvoiceBatcher, Result
from consumer.afosto.errors import NotFound, NotSent
from consumer.afosto.fresh import FreshReads
from consumer.afosto.http11 import Http11Client, RequestFailed
from consumer.afosto.limiter import SharedLimiter, Sleep
from consumer.afosto.operations import OperationName, document, invoice_request
from handlers.errors import Conflict, Permanent, RateLimited, Systemic, Transient
from handlers.ports import CrashPoint, no_crash
from schemas.afosto import Invoice, Order
from schemas.parsing import describe

if TYPE_CHECKING:
    from consumer.metrics import AfostoOutcome, Metrics

log = logging.getLogger(__name__)

PROBE_ORDER_ID: Final = "invoicer-probe-00000000"
_USER_AGENT: Final = "afosto-invoicer/0.1"


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _outcome(exc: BaseException | None) -> AfostoOutcome:
    if exc is None:
        return "ok"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, Conflict):
        return "conflict"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, Transient):
        return "transient"
    if isinstance(exc, Systemic):
        return "unauthorized"
    return "error"


def _answered(exc: BaseException | None) -> bool:
    """Did Afosto itself answer (not 5xx, 429, timeout, lost connection)? Feeds the circuit."""
    if exc is None or isinstance(exc, NotFound | Systemic | Permanent):
        return True
    if isinstance(exc, Conflict):
        return not exc.unknown_outcome
    return False


class AfostoClient:
    """Implements handlers.ports.AfostoApi over HTTP; use as an async context manager."""

    def __init__(
        self,
        url: str,
        api_key: SecretStr,
        *,
        timeout: float | timedelta = 10.0,
        max_tries: int = 3,
        retry_budget: float | timedelta = 10.0,
        concurrency: int = 16,
        metrics: Metrics | None = None,
        crash: Callable[[CrashPoint], None] = no_crash,
        sleep: Sleep = asyncio.sleep,
        limiter: SharedLimiter | None = None,
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self._timeout = _seconds(timeout)
        self._max_tries = max_tries
        self._budget = _seconds(retry_budget)
        self._metrics = metrics
        self._crash = crash
        self._sleep = sleep
        self._on_result = on_result
        self._concurrency = max(concurrency, 1)
        self.limiter = limiter or SharedLimiter(concurrency=concurrency, sleep=sleep)
        self._http: Http11Client | None = None
        self._invoices: InvoiceBatcher | None = None
        self._orders: FreshReads[Answer] | None = None

    def __repr__(self) -> str:
        return f"AfostoClient(url={self.url!r}, api_key=**********)"

    async def __aenter__(self) -> Self:
        headers = {
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
        }
        # One kept-alive connection per call in flight; the limiter never allows more.
        self._http = Http11Client(
            self.url, headers, timeout=self._timeout, keep=self._concurrency, connect_timeout=5.0
        )
        # A quarter of the limiter's slots, at most 4: order queries and mutations keep their
        # share, one slow or retrying batch does not stall every pdf check, and few batches in
        # flight means ids pile up into large batches under load (fewer calls at Afosto).
        in_flight = max(1, min(4, self._concurrency // 4))
        self._invoices = InvoiceBatcher(self._fetch_invoices, max_in_flight=in_flight)
        self._orders = FreshReads(self._send_order_query, on_shared=self._order_read_shared)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._invoices is not None:
            await self._invoices.close()  # before the connections its batches use
            self._invoices = None
        if self._orders is not None:
            await self._orders.close()
            self._orders = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the AfostoApi port --------------------------------------------------------------

    async def order(self, order_id: str) -> Order | None:
        """The order with actions, items and invoice item ids; None on NOT_FOUND.

        Concurrent reads of one order share a request sent after each of them asked (fresh.py);
        each try is shared, not the retried whole, so a failed try delays nobody's next one.
        """
        if self._orders is None:
            raise RuntimeError("AfostoClient used outside `async with`")
        orders = self._orders
        answer = await self._retried(lambda: orders.get(order_id))
        return None if answer is None else model(Order, answer.data.get("order"), "order")

    async def invoice(self, invoice_id: str) -> Invoice | None:
        """The full invoice; None on NOT_FOUND. Shares a request with concurrent reads."""
        if self._invoices is None:
            raise RuntimeError("AfostoClient used outside `async with`")
        return await self._invoices.get(invoice_id)

    async def invoice_items(self, item_ids: Sequence[str], invoice_id: str) -> Invoice:
        """Create the invoice; Conflict when refused or when the outcome is unknown."""
        variables = {"input": {"items": list(item_ids), "invoice_id": invoice_id}}
        retrying = self._retrying(lambda e: isinstance(e, NotSent | RateLimited))
        async for attempt in retrying:
            with attempt:
                data = (await self._call("invoice_items", variables, mutation=True)).data
        payload = data.get("invoiceItems") if isinstance(data, Mapping) else None
        raw = payload.get("invoice") if isinstance(payload, Mapping) else None
        if raw is None:
            raise Conflict("Afosto invoiceItems: no invoice in the answer", unknown_outcome=True)
        try:
            return Invoice.model_validate(raw)
        except ValidationError as exc:
            raise Conflict(
                f"Afosto invoiceItems: unreadable invoice ({describe(exc)})", unknown_outcome=True
            ) from None

    async def ping(self) -> None:
        """Raise unless Afosto answers and accepts the key (a NOT_FOUND answer is fine)."""
        await self._query("probe", {"id": PROBE_ORDER_ID})

    # -- plumbing ------------------------------------------------------------------------

    def _order_read_shared(self) -> None:
        if self._metrics is not None:
            self._metrics.child(self._metrics.afosto_reads_shared, "order").inc()

    async def _send_order_query(self, order_id: str) -> Answer:
        return await self._call("order", {"id": order_id}, mutation=False)

    async def _fetch_invoices(self, ids: Sequence[str]) -> dict[str, Result]:
        """One request for `ids` (one id: the plain `invoice` query); each id's own outcome."""
        query, variables, aliases = invoice_request(ids)
        answer = await self._query("invoice", variables, query=query, aliases=aliases)
        if answer is None:  # NOT_FOUND for every id
            return dict.fromkeys(ids)
        return per_alias(Invoice, "invoice", dict(zip(ids, aliases, strict=True)), answer)

    async def _query(
        self,
        operation: OperationName,
        variables: dict[str, Any],
        *,
        query: str | None = None,
        aliases: Collection[str] = (),
    ) -> Answer | None:
        """The answer to a query, retried on Transient; None when Afosto says NOT_FOUND."""
        return await self._retried(
            lambda: self._call(operation, variables, mutation=False, query=query, aliases=aliases)
        )

    async def _retried(self, send: Callable[[], Awaitable[Answer]]) -> Answer | None:
        """`send()` retried on Transient; None when Afosto says NOT_FOUND."""
        try:
            async for attempt in self._retrying(lambda e: isinstance(e, Transient)):
                with attempt:
                    return await send()
        except NotFound:
            return None
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _retrying(self, retry_on: Callable[[BaseException], bool]) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception(retry_on),
            stop=stop_after_attempt(self._max_tries) | stop_before_delay(self._budget),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=_log_retry,
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            # The limiter already holds every call back; this call waits at least as long.
            return max(self.limiter.pause_remaining, exc.retry_after or 0.0)
        return float(wait_random_exponential(multiplier=0.5, max=4)(state))

    async def _call(
        self,
        operation: OperationName,
        variables: dict[str, Any],
        *,
        mutation: bool,
        query: str | None = None,
        aliases: Collection[str] = (),
    ) -> Answer:
        """One HTTP round trip, measured; returns the answer or raises a mapped error."""
        started = time.monotonic()
        error: BaseException | None = None
        try:
            async with self.limiter.slot():
                started = time.monotonic()
                answer = await self._send(operation, variables, mutation, query, aliases)
            self.limiter.succeeded()
            return answer
        except RateLimited as exc:
            self.limiter.rate_limited(exc.retry_after)
            error = exc
            raise
        except BaseException as exc:
            if _answered(exc):  # NOT_FOUND, a refusal...: the rate limit let the call through
                self.limiter.succeeded()
            error = exc
            raise
        finally:
            self._record(operation, error, time.monotonic() - started)

    def _record(self, operation: str, error: BaseException | None, seconds: float) -> None:
        if isinstance(error, asyncio.CancelledError):
            return  # shutdown, not an Afosto outcome
        if self._metrics is not None:
            self._metrics.afosto_call(operation, _outcome(error), seconds)
        if self._on_result is not None:
            self._on_result(_answered(error))

    async def _send(
        self,
        operation: OperationName,
        variables: dict[str, Any],
        mutation: bool,
        query: str | None,
        aliases: Collection[str],
    ) -> Answer:
        if self._http is None:
            raise RuntimeError("AfostoClient used outside `async with`")
        text = document(operation) if query is None else query
        body = orjson.dumps({"query": text, "variables": variables})
        try:
            answer = await self._http.post(body)
        except RequestFailed as exc:
            if not exc.sent:
                raise NotSent(f"Afosto {operation}: {exc}") from None
            if mutation:
                raise Conflict(f"Afosto {operation}: {exc}", unknown_outcome=True) from None
            raise Transient(f"Afosto {operation}: {exc}") from None
        if mutation:
            self._crash("after_mutation_sent")
        return read_answer(
            operation,
            answer.status,
            answer.retry_after,
            answer.body,
            mutation=mutation,
            aliases=aliases,
        )


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    sleep = state.next_action.sleep if state.next_action else 0.0
    log.warning("Afosto call failed (try %d), again in %.2fs: %s", state.attempt_number, sleep, exc)
