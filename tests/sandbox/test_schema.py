"""The sandbox serves exactly the shared contract, and the service's operations fit it."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from sandbox.schema import executable_schema, sdl
from tests.sandbox.operations import ALL

REPO = Path(__file__).resolve().parents[2]
SHARED_SDL = REPO.parent / "shared" / "afosto" / "schema.graphql"


@pytest.mark.skipif(not SHARED_SDL.exists(), reason="../shared is not beside the repository")
def test_schema_copy_equals_shared_contract() -> None:
    assert sdl() == SHARED_SDL.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(ALL))
def test_service_operations_validate(name: str) -> None:
    errors = validate(build_schema(sdl()), parse(ALL[name]))
    assert errors == []


def test_invalid_operation_is_rejected() -> None:
    errors = validate(executable_schema(), parse("{ order(id: 1) { formatted } }"))
    assert errors, "a field the schema lacks must not validate"


def test_every_root_field_has_a_resolver() -> None:
    schema = executable_schema()
    assert schema.query_type is not None
    assert schema.mutation_type is not None
    roots = [*schema.query_type.fields.values(), *schema.mutation_type.fields.values()]
    assert all(field.resolve is not None for field in roots)
