"""Bytes off the wire → a validated model, or `InvalidMessage` with the dead-letter reason.

Rules, checked in this order (each poison message gets exactly one reason):
- `too_large`: the body is over 256 KiB.
- `invalid_json`: the content type is set and is not JSON (`application/json` or `*/*+json`,
  parameters allowed, charset must be UTF-8 when given; a missing content type is accepted
  because many publishers leave it out), or the body is not UTF-8, or not JSON.
- `schema_violation`: JSON that is not an object, or misses / mistypes a field.
- `unknown_event_type` is decided by the trigger parser (schemas.inbound).
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

MAX_BODY_BYTES: Final = 256 * 1024

M = TypeVar("M", bound=BaseModel)

InvalidReason = Literal["too_large", "invalid_json", "schema_violation", "unknown_event_type"]


class InvalidMessage(ValueError):
    """A body that can never become its model (handlers.routing makes it a Permanent)."""

    def __init__(self, reason: InvalidReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: InvalidReason = reason
        self.detail = detail


def _json_content_type(content_type: str) -> bool:
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return False
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def decode_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The body as a JSON object; InvalidMessage too_large / invalid_json / schema_violation."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidMessage("too_large", f"body is {len(body)} bytes, limit {MAX_BODY_BYTES}")
    if content_type and not _json_content_type(content_type):
        raise InvalidMessage("invalid_json", f"content type {content_type[:80]!r} is not JSON")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = _decode_slowly(body)  # says why; also accepts what only the json module does
    if not isinstance(data, dict):
        raise InvalidMessage(
            "schema_violation", f"body is a JSON {type(data).__name__}, not an object"
        )
    return data


def _decode_slowly(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage("invalid_json", f"body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidMessage("invalid_json", f"body is not JSON: {exc}") from None
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """`model` from decoded JSON; a validation failure is a schema_violation."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage("schema_violation", describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """A short, value-free summary of what failed (values may be large or sensitive)."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)[:5]
    ]
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
