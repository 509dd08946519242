"""The sandbox serves exactly the shared contract, and the service's operations fit it."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from consumer.afosto.operations import OPERATIONS, OperationName, document
from sandbox import Store
from sandbox.executor import Executor
from sandbox.resolvers import RequestContext
from sandbox.schema import executable_schema, sdl
from tests.sandbox.helpers import simple_order
from tests.sandbox.operations import ALL

REPO = Path(__file__).resolve().parents[2]
SHARED_SDL = REPO.parent / "shared" / "afosto" / "schema.graphql"


@pytest.mark.skipif(not SHARED_SDL.exists(), reason="../shared is not beside the repository")
def test_schema_copy_equals_shared_contract() -> None:
    assert sdl() == SHARED_SDL.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(ALL))
def test_test_operations_validate(name: str) -> None:
    errors = validate(build_schema(sdl()), parse(ALL[name]))
    assert errors == []


@pytest.mark.parametrize("name", OPERATIONS)
def test_the_services_own_operations_validate_and_run(name: OperationName) -> None:
    errors = validate(executable_schema(), parse(document(name)))
    assert errors == [], [e.message for e in errors]
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    ids = [u.id for line in order.lines for u in line.units]
    variables: dict[str, object] = {"id": order.id}
    if name == "invoice_items":
        variables = {"input": {"items": ids, "invoice_id": "inv-op"}}
    elif name == "invoice":
        variables = {"id": store.invoice_items(ids, "inv-op").id}
    executor = Executor(executable_schema())
    context = RequestContext(store, "http://x", 0.0)
    body = executor.execute(executor.prepare(document(name)), variables, context)
    assert "errors" not in body, body


def test_invalid_operation_is_rejected() -> None:
    errors = validate(executable_schema(), parse("{ order(id: 1) { formatted } }"))
    assert errors, "a field the schema lacks must not validate"


def test_every_root_field_has_a_resolver() -> None:
    schema = executable_schema()
    assert schema.query_type is not None
    assert schema.mutation_type is not None
    roots = [*schema.query_type.fields.values(), *schema.mutation_type.fields.values()]
    assert all(field.resolve is not None for field in roots)


def test_id_lists_that_are_not_plain_strings_still_complete_per_item() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    order.lines[0].units[0].id = 12345  # type: ignore[assignment]  # bypasses the fast path
    order.revision += 1
    executor = Executor(executable_schema())
    prepared = executor.prepare("query($id: String!) { order(id: $id) { items { ids } } }")
    body = executor.execute(prepared, {"id": order.id}, RequestContext(store, "http://x", 0.0))
    first_ids = body["data"]["order"]["items"][0]["ids"]
    assert first_ids[0] == "12345"
    assert all(isinstance(i, str) for i in first_ids)
