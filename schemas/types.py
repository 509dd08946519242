"""Scalar types shared by every model: Afosto's Money and DateTime, and the model bases."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _to_cents(value: object) -> object:
    """Money arrives as integer cents; tolerate 2499.0 and "2499" but never fractional cents."""
    if isinstance(value, bool):
        raise ValueError("Money must be a number, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float | str):
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"Money must be integer cents, got {value!r}") from None
        if not amount.is_finite() or amount != amount.to_integral_value():
            raise ValueError(f"Money must be integer cents, got {value!r}")
        return int(amount)
    return value


def _from_unix_ms(value: object) -> object:
    """Afosto's DateTime is Unix milliseconds; tolerate numeric strings and RFC 3339 text."""
    if isinstance(value, bool):
        raise ValueError("DateTime must be Unix milliseconds")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = Decimal(text)
        except InvalidOperation:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float | Decimal):
        return datetime.fromtimestamp(float(value) / 1000, tz=UTC)
    return value


Money = Annotated[int, BeforeValidator(_to_cents)]
"""Integer cents (negative on credit invoices)."""

UnixMillis = Annotated[datetime, BeforeValidator(_from_unix_ms)]
"""A timezone-aware datetime read from Unix milliseconds."""


class Inbound(BaseModel):
    """What others send us: frozen, unknown fields accepted (and kept)."""

    model_config = ConfigDict(frozen=True, extra="allow")


class Internal(BaseModel):
    """Messages between our own stages: frozen; unknown fields ignored so upgrades can roll."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Outbound(BaseModel):
    """What we publish: frozen and exact, unknown fields are a bug."""

    # Fields with defaults are always serialized, so the published schema requires them.
    model_config = ConfigDict(
        frozen=True, extra="forbid", json_schema_serialization_defaults_required=True
    )


class AfostoModel(BaseModel):
    """Afosto responses: frozen, extra fields ignored (the API may grow)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
