"""Afosto's HTTP answers → `data` (and, for batched queries, each alias's own errors).

HTTP status first where it decides, then JSON, then GraphQL `errors`. A batched query (several
aliased fields in one request) tolerates errors that concern one alias only; anything else —
an error without a path, a code about the whole request, or the same failure for every alias —
is raised for the whole request, exactly as for a single query.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final, NamedTuple, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from consumer.afosto.errors import NotFound, error_code, graphql_error, http_error
from handlers.errors import Conflict, InvoicerError, Transient
from schemas.parsing import describe

M = TypeVar("M", bound=BaseModel)

ErrorList = list[dict[str, Any]]
# Codes about the request or the caller, never about one field: they fail the whole batch.
_WHOLE_REQUEST: Final = frozenset(
    {
        "UNAUTHORIZED",
        "FORBIDDEN",
        "RATE_LIMITED",
        "GRAPHQL_VALIDATION_FAILED",
        "GRAPHQL_PARSE_FAILED",
        "BAD_REQUEST",
    }
)


class Answer(NamedTuple):
    """`data`, plus the errors of single aliases when the request named `aliases`."""

    data: dict[str, Any]
    field_errors: dict[str, ErrorList]


def read_answer(
    operation: str,
    status: int,
    retry_after: str | None,
    raw: bytes,
    *,
    mutation: bool,
    aliases: Collection[str] = (),
) -> Answer:
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
    field_errors: dict[str, ErrorList] = {}
    if isinstance(errors, list) and errors:
        listed = [e for e in errors if isinstance(e, dict)]
        field_errors = _per_alias(listed, aliases)
        if not field_errors:
            raise graphql_error(operation, listed, mutation=mutation)
    if status != 200:
        raise _required(http_error(operation, status, retry_after, mutation=mutation))
    data = answer.get("data")
    if not isinstance(data, dict):
        detail = f"Afosto {operation}: answer without data"
        raise Conflict(detail, unknown_outcome=True) if mutation else Transient(detail)
    return Answer(data, field_errors)


def _per_alias(errors: ErrorList, aliases: Collection[str]) -> dict[str, ErrorList]:
    """Errors by the alias they concern; empty when they must fail the whole request."""
    if not aliases or not errors:
        return {}
    by_alias: dict[str, ErrorList] = {}
    for error in errors:
        path = error.get("path")
        head = path[0] if isinstance(path, list) and path else None
        if not isinstance(head, str) or head not in aliases:
            return {}  # no path, or not one of ours: about the whole request
        if error_code(error) in _WHOLE_REQUEST:
            return {}
        by_alias.setdefault(head, []).append(error)
    if len(by_alias) == len(aliases):
        # Every alias failed: when they failed alike (all NOT_FOUND, or all something else),
        # that is the request's answer, raised (and retried) as a single query's would be.
        kinds = {any(error_code(e) == "NOT_FOUND" for e in errs) for errs in by_alias.values()}
        if len(kinds) == 1:
            return {}
    return by_alias


def per_alias(
    kind: type[M], field: str, aliases: Mapping[str, str], answer: Answer
) -> dict[str, M | InvoicerError | None]:
    """Each key's own outcome in a batched answer (`aliases`: key → alias): the model, None
    (null or NOT_FOUND), or the error of that alias alone (Transient when unreadable)."""
    results: dict[str, M | InvoicerError | None] = {}
    for key, alias in aliases.items():
        errors = answer.field_errors.get(alias)
        if errors:
            error = graphql_error(field, errors, mutation=False)
            results[key] = None if isinstance(error, NotFound) else error
            continue
        try:
            results[key] = model(kind, answer.data.get(alias), field)
        except Transient as exc:  # this one unreadable; the others are fine
            results[key] = exc
    return results


def _required(error: InvoicerError | None) -> InvoicerError:
    return error if error is not None else Transient("Afosto: unexpected answer")


def model(model: type[M], raw: object, field: str) -> M | None:
    """`raw` validated as `model`; None for null (not found); Transient when unreadable."""
    if raw is None:
        return None  # data.<field> null without an error: treat as not found
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise Transient(f"Afosto {field}: unreadable answer ({describe(exc)})") from None


__all__ = ["Answer", "ErrorList", "model", "per_alias", "read_answer"]
