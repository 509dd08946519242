"""Afosto-style API errors: `extensions.code`, the semantic `extensions.status`, maybe `field`."""

from __future__ import annotations

from typing import Final

from graphql import GraphQLError

STATUS: Final[dict[str, int]] = {
    "BAD_REQUEST": 400,
    "GRAPHQL_VALIDATION_FAILED": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "VALIDATION_ERROR": 422,
    "RATE_LIMITED": 429,
    "INTERNAL_SERVER_ERROR": 500,
}


class ApiError(GraphQLError):
    """Raised by the store and resolvers; graphql-core keeps the extensions on the way out."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        extensions: dict[str, object] = {"code": code, "status": STATUS[code]}
        if field is not None:
            extensions["field"] = field
        super().__init__(message, extensions=extensions)
        self.code = code


def error_body(code: str, message: str) -> dict[str, object]:
    """A whole response carrying one error and no data."""
    return {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": code, "status": STATUS[code]}}],
    }
