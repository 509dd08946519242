"""Runs GraphQL documents against the schema, parsing and validating each query text once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
    validate,
)
from graphql.execution import Executor as GraphQLExecutor
from graphql.pyutils import Path

from sandbox.errors import STATUS
from sandbox.resolvers import RequestContext

# Operation kinds faults can be scoped to; "other" covers anything else (e.g. __typename).
OPERATIONS = ("order", "orders", "invoice", "mutation", "other")


@dataclass(frozen=True)
class Prepared:
    """A parsed, validated document (or the errors that stop it) and its operation kind."""

    document: DocumentNode | None
    errors: list[dict[str, Any]]
    operation: str


def _classify(document: DocumentNode) -> str:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if definition.operation == OperationType.MUTATION:
                return "mutation"
            for selection in definition.selection_set.selections:
                if isinstance(selection, FieldNode) and selection.name.value in OPERATIONS:
                    return selection.name.value
    return "other"


def _formatted(error: GraphQLError, default_code: str) -> dict[str, Any]:
    body: dict[str, Any] = dict(error.formatted)
    extensions: dict[str, Any] = dict(body.get("extensions") or {})
    code = extensions.get("code")
    if code not in STATUS:
        code = default_code
        extensions = {"code": code, "status": STATUS[code]}
    body["extensions"] = extensions
    return body


def _never_awaitable(_value: Any) -> bool:
    return False


def _attribute_resolver(source: Any, info: GraphQLResolveInfo[Any], **_args: Any) -> Any:
    """graphql-core's default resolver minus the checks our plain objects never need."""
    if type(source) is dict:
        return source.get(info.field_name)
    return getattr(source, info.field_name, None)


class _LeanExecutor(GraphQLExecutor[Any]):
    """graphql-core's plain executor (the schema has no @defer/@stream), with a fast path for
    lists of non-null strings: the many `ids` lists are taken as they are once checked."""

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: Any,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        item_type = return_type.of_type
        if (
            type(result) is list
            and type(item_type) is GraphQLNonNull
            and item_type.of_type is GraphQLString
            and all(type(value) is str for value in result)
        ):
            return result
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )


class Executor:
    """Caches prepared documents by query text; execution itself is synchronous."""

    def __init__(self, schema: GraphQLSchema, *, cache_size: int = 1024) -> None:
        self.schema = schema
        self._cache: dict[str, Prepared] = {}
        self._cache_size = cache_size

    def prepare(self, query: str) -> Prepared:
        """The parsed and validated document for `query`, from the cache when seen before."""
        prepared = self._cache.get(query)
        if prepared is None:
            prepared = self._prepare(query)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[query] = prepared
        return prepared

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query)
        except GraphQLError as exc:
            return Prepared(None, [_formatted(exc, "GRAPHQL_VALIDATION_FAILED")], "other")
        errors = validate(self.schema, document)
        formatted = [_formatted(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]
        return Prepared(None if errors else document, formatted, _classify(document))

    def execute(
        self,
        prepared: Prepared,
        variables: dict[str, Any] | None,
        context: RequestContext,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """The response body for a prepared document: {data, errors?}."""
        if prepared.document is None:
            return {"data": None, "errors": prepared.errors}
        result = execute(
            self.schema,
            prepared.document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=_attribute_resolver,
            # Every resolver is synchronous, so skip graphql-core's per-field awaitable probe.
            is_awaitable=_never_awaitable,  # type: ignore[arg-type]
            executor_class=_LeanExecutor,
        )
        assert isinstance(result, ExecutionResult), "resolvers are synchronous"
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [
                _formatted(e, "INTERNAL_SERVER_ERROR" if e.path else "GRAPHQL_VALIDATION_FAILED")
                for e in result.errors
            ]
        return body
