"""Afosto's answers → the service's error tree (DESIGN §6).

Afosto sends GraphQL errors inside HTTP 200 with `extensions.code` (and sometimes a numeric
`extensions.status`); proxies in front of it may still send 401/403/429/5xx. Both map here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

from handlers.errors import Conflict, InvoicerError, Permanent, RateLimited, Systemic, Transient

_STATUS_CODES: Final = {
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_SERVER_ERROR",
}
# When several errors come back, the one that matters most for the caller wins.
_PRECEDENCE: Final = (
    "UNAUTHORIZED",
    "FORBIDDEN",
    "RATE_LIMITED",
    "VALIDATION_ERROR",
    "NOT_FOUND",
    "INTERNAL_SERVER_ERROR",
)
# Afosto could not even read our document: a bug in an operation, retrying cannot help.
_REJECTED_DOCUMENT: Final = frozenset(
    {"GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "BAD_REQUEST"}
)


class NotSent(Transient):
    """The request never reached Afosto (connection refused, connect timeout): safe to retry."""


class NotFound(InvoicerError):
    """Afosto said NOT_FOUND; order/invoice turn it into None."""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait per a Retry-After header (delta-seconds or HTTP date); None if unusable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def error_code(error: Mapping[str, Any]) -> str:
    """`extensions.code`, else the code that a numeric `extensions.status` stands for."""
    ext = error.get("extensions")
    if isinstance(ext, Mapping):
        code = ext.get("code")
        if isinstance(code, str) and code:
            return code.upper()
        status = ext.get("status")
        if isinstance(status, int) and status in _STATUS_CODES:
            return _STATUS_CODES[status]
    return "UNKNOWN"


def _extension(error: Mapping[str, Any], *keys: str) -> Any:
    ext = error.get("extensions")
    if isinstance(ext, Mapping):
        for key in keys:
            if key in ext:
                return ext[key]
    return None


def _message(error: Mapping[str, Any]) -> str:
    message = error.get("message")
    return str(message)[:200] if message is not None else "(no message)"


def graphql_error(
    operation: str, errors: Sequence[Mapping[str, Any]], *, mutation: bool
) -> InvoicerError:
    """The exception for a response's `errors` array (NotFound for NOT_FOUND)."""
    by_code = {error_code(e): e for e in reversed(errors)}
    code = next((c for c in _PRECEDENCE if c in by_code), next(iter(by_code), "UNKNOWN"))
    error = by_code.get(code, errors[0] if errors else {})
    detail = f"Afosto {operation}: {code}: {_message(error)}"
    if code in ("UNAUTHORIZED", "FORBIDDEN"):
        return Systemic(detail)
    if code == "RATE_LIMITED":
        hint = _extension(error, "retry_after", "retryAfter")
        retry_after = float(hint) if isinstance(hint, int | float) and hint >= 0 else None
        return RateLimited(detail, retry_after=retry_after)
    if code == "VALIDATION_ERROR" and mutation:
        field = _extension(error, "field")
        return Conflict(detail, field=str(field) if field is not None else None)
    if code in _REJECTED_DOCUMENT:
        return Permanent("api_rejected", detail)
    if code == "NOT_FOUND":
        if mutation:  # an item id that exists nowhere: the intent is stale, re-plan it
            return Conflict(detail, field="items")
        return NotFound(detail)
    if mutation:  # INTERNAL_SERVER_ERROR or a code we do not know: it may have committed
        return Conflict(detail, unknown_outcome=True)
    return Transient(detail)


def http_error(
    operation: str, status: int, retry_after: str | None, *, mutation: bool
) -> InvoicerError | None:
    """The exception for a non-200 status without a usable GraphQL body; None for 2xx."""
    detail = f"Afosto {operation}: HTTP {status}"
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return Systemic(detail)
    if status == 429:
        return RateLimited(detail, retry_after=parse_retry_after(retry_after))
    if mutation:  # whatever a proxy answered, the mutation may have reached Afosto: read first
        return Conflict(detail, unknown_outcome=True)
    return Transient(detail)
