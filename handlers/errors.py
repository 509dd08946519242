"""The one error tree. The consume loop alone maps these onto ack, delay or dead-letter.

InvoicerError
├── Transient        retry later: in-process (tenacity) for API calls, then broker-delayed
│   │                tiers; once `max_attempts` is spent, dead-letter with `exhausted_reason`
│   └── RateLimited  back off and slow the whole client; carries `retry_after` seconds
├── Permanent        dead-letter now with `reason` (one of DEAD_REASONS) and a detail
├── Conflict         Afosto refused the mutation (VALIDATION_ERROR) or its outcome is
│                    unknown: read before retrying (DESIGN §3); never leaves a handler
└── Systemic         concerns every message (401/403, broker gone): pause consuming,
                     fail readiness, probe; the delivery is returned to its queue untouched
"""

from __future__ import annotations

from typing import Final, Literal, get_args

DeadReason = Literal[
    "invalid_json",
    "schema_violation",
    "unknown_event_type",
    "too_large",
    "order_not_found",
    "not_invoiceable",
    "api_rejected",
    "pdf_timeout",
    "retries_exhausted",
]
DEAD_REASONS: Final[tuple[DeadReason, ...]] = get_args(DeadReason)


class InvoicerError(Exception):
    """Base of every error a handler or the Afosto client raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Transient(InvoicerError):
    """Worth retrying later; after `max_attempts` deliveries dead-letter `exhausted_reason`."""

    def __init__(
        self,
        detail: str,
        *,
        max_attempts: int | None = None,
        exhausted_reason: DeadReason = "retries_exhausted",
    ) -> None:
        super().__init__(detail)
        self.max_attempts = max_attempts
        self.exhausted_reason: DeadReason = exhausted_reason


class RateLimited(Transient):
    """Afosto asked us to slow down (`RATE_LIMITED` or HTTP 429)."""

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Permanent(InvoicerError):
    """Retrying cannot help: dead-letter at once with `reason`."""

    def __init__(self, reason: DeadReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: DeadReason = reason


class Conflict(InvoicerError):
    """`invoiceItems` was refused or its outcome is unknown; the caller must read first.

    `field` is Afosto's `extensions.field` of a VALIDATION_ERROR (None when absent);
    `unknown_outcome` is True when the mutation may have committed (timeout, lost connection).
    """

    def __init__(
        self, detail: str, *, field: str | None = None, unknown_outcome: bool = False
    ) -> None:
        super().__init__(detail)
        self.field = field
        self.unknown_outcome = unknown_outcome


class Systemic(InvoicerError):
    """Every message would fail the same way: stop consuming until a probe succeeds."""
