"""The Afosto GraphQL client: one session, typed errors, declared retries, a shared limiter.

Queries are retried in-process with tenacity on Transient (jittered exponential, capped in
tries and total time, Retry-After honoured). The invoiceItems mutation is retried only when
the request provably never left (NotSent) or Afosto refused it for rate (RateLimited); an
unknown outcome is raised as Conflict so the issue handler reads before it retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import orjson
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from consumer.afosto.errors import NotFound, NotSent, graphql_error, http_error
from consumer.afosto.http11 import Http11Client, RequestFailed
from consumer.afosto.limiter import SharedLimiter, Sleep
from consumer.afosto.operations import OperationName, document
from handlers.errors import Conflict, InvoicerError, Permanent, RateLimited, Systemic, Transient
from handlers.ports import CrashPoint, no_crash
from schemas.afosto import Invoice, Order
from schemas.parsing import describe

if TYPE_CHECKING:
    from consumer.metrics import AfostoOutcome, Metrics

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

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
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the AfostoApi port --------------------------------------------------------------

    async def order(self, order_id: str) -> Order | None:
        """The order with actions, items and invoice item ids; None on NOT_FOUND."""
        data = await self._query("order", {"id": order_id})
        return None if data is None else _model(Order, data.get("order"), "order")

    async def invoice(self, invoice_id: str) -> Invoice | None:
        """The full invoice; None on NOT_FOUND."""
        data = await self._query("invoice", {"id": invoice_id})
        return None if data is None else _model(Invoice, data.get("invoice"), "invoice")

    async def invoice_items(self, item_ids: Sequence[str], invoice_id: str) -> Invoice:
        """Create the invoice; Conflict when refused or when the outcome is unknown."""
        variables = {"input": {"items": list(item_ids), "invoice_id": invoice_id}}
        retrying = self._retrying(lambda e: isinstance(e, NotSent | RateLimited))
        async for attempt in retrying:
            with attempt:
                data = await self._call("invoice_items", variables, mutation=True)
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

    async def _query(
        self, operation: OperationName, variables: dict[str, Any]
    ) -> dict[str, Any] | None:
        """`data` of a query, retried on Transient; None when Afosto says NOT_FOUND."""
        try:
            async for attempt in self._retrying(lambda e: isinstance(e, Transient)):
                with attempt:
                    return await self._call(operation, variables, mutation=False)
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
        self, operation: OperationName, variables: dict[str, Any], *, mutation: bool
    ) -> dict[str, Any]:
        """One HTTP round trip, measured; returns `data` or raises a mapped error."""
        started = time.monotonic()
        error: BaseException | None = None
        try:
            async with self.limiter.slot():
                started = time.monotonic()
                data = await self._send(operation, variables, mutation=mutation)
            self.limiter.succeeded()
            return data
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
        self, operation: OperationName, variables: dict[str, Any], *, mutation: bool
    ) -> dict[str, Any]:
        if self._http is None:
            raise RuntimeError("AfostoClient used outside `async with`")
        body = orjson.dumps({"query": document(operation), "variables": variables})
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
        return _data(operation, answer.status, answer.retry_after, answer.body, mutation=mutation)


def _data(
    operation: str, status: int, retry_after: str | None, raw: bytes, *, mutation: bool
) -> dict[str, Any]:
    """`data` of an answer, or the mapped error (HTTP status first where it decides)."""
    if status in (401, 403, 429) or status >= 500:
        raise _required(http_error(operation, status, retry_after, mutation=mutation))
    try:
        answer = orjson.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        if status != 200:
            raise _required(http_error(operation, status, retry_after, mutation=mutation))
        detail = f"Afosto {operation}: malformed JSON answer"
        raise Conflict(detail, unknown_outcome=True) if mutation else Transient(detail)
    errors = answer.get("errors")
    if isinstance(errors, list) and errors:
        listed = [e for e in errors if isinstance(e, dict)]
        raise graphql_error(operation, listed, mutation=mutation)
    if status != 200:
        raise _required(http_error(operation, status, retry_after, mutation=mutation))
    data = answer.get("data")
    if not isinstance(data, dict):
        detail = f"Afosto {operation}: answer without data"
        raise Conflict(detail, unknown_outcome=True) if mutation else Transient(detail)
    return data


def _required(error: InvoicerError | None) -> InvoicerError:
    return error if error is not None else Transient("Afosto: unexpected answer")


def _model(model: type[M], raw: object, field: str) -> M | None:
    if raw is None:
        return None  # data.<field> null without an error: treat as not found
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise Transient(f"Afosto {field}: unreadable answer ({describe(exc)})") from None


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    sleep = state.next_action.sleep if state.next_action else 0.0
    log.warning("Afosto call failed (try %d), again in %.2fs: %s", state.attempt_number, sleep, exc)
