"""schema.graphql as an executable graphql-core schema with the sandbox's resolvers bound."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from graphql import GraphQLError, GraphQLObjectType, GraphQLScalarType, GraphQLSchema, build_schema
from graphql.language import IntValueNode, StringValueNode, ValueNode

from sandbox import resolvers

SDL_FILE = "schema.graphql"


def sdl() -> str:
    """The SDL text shipped in this package (kept equal to the shared contract by a test)."""
    return resources.files("sandbox").joinpath(SDL_FILE).read_text(encoding="utf-8")


def _int_scalar(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GraphQLError(f"expected an integer, got {value!r}")
    return value


def _int_literal(node: ValueNode, _variables: Any = None) -> int:
    if not isinstance(node, IntValueNode):
        raise GraphQLError("expected an integer literal")
    return int(node.value)


def _str_scalar(value: Any) -> str:
    if not isinstance(value, str):
        raise GraphQLError(f"expected a string, got {value!r}")
    return value


def _str_literal(node: ValueNode, _variables: Any = None) -> str:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("expected a string literal")
    return node.value


def _bind_scalars(schema: GraphQLSchema) -> None:
    for name in ("Money", "DateTime"):
        scalar = schema.type_map[name]
        assert isinstance(scalar, GraphQLScalarType)
        scalar.serialize = _int_scalar  # type: ignore[method-assign]
        scalar.parse_value = _int_scalar  # type: ignore[method-assign]
        scalar.parse_literal = _int_literal  # type: ignore[method-assign,assignment]
    currency = schema.type_map["Currency"]
    assert isinstance(currency, GraphQLScalarType)
    currency.serialize = _str_scalar  # type: ignore[method-assign]
    currency.parse_value = _str_scalar  # type: ignore[method-assign]
    currency.parse_literal = _str_literal  # type: ignore[method-assign,assignment]


@cache
def executable_schema() -> GraphQLSchema:
    """Built once per process; the resolvers read per-request state from the context."""
    schema = build_schema(sdl())
    _bind_scalars(schema)
    assert schema.query_type is not None
    assert schema.mutation_type is not None
    query = schema.query_type.fields
    query["order"].resolve = resolvers.order
    query["invoice"].resolve = resolvers.invoice
    query["orders"].resolve = resolvers.orders
    schema.mutation_type.fields["invoiceItems"].resolve = resolvers.invoice_items
    invoice_type = schema.get_type("Invoice")
    assert isinstance(invoice_type, GraphQLObjectType)
    invoice_type.fields["pdf_url"].resolve = resolvers.pdf_url
    return schema
