"""Every GraphQL operation the client sends is valid against the project's Afosto schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from consumer.afosto.operations import OPERATIONS, OperationName, document

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = (
    ROOT.parent / "shared" / "afosto" / "schema.graphql",
    ROOT / "sandbox" / "schema.graphql",
)


def schema_text() -> str:
    for path in CANDIDATES:
        if path.exists():
            return path.read_text(encoding="utf-8")
    pytest.fail(f"no schema.graphql at any of {[str(p) for p in CANDIDATES]}")


@pytest.mark.parametrize("name", OPERATIONS)
def test_operation_validates_against_the_schema(name: OperationName) -> None:
    errors = validate(build_schema(schema_text()), parse(document(name)))
    assert errors == [], [e.message for e in errors]


def test_an_invalid_selection_is_caught() -> None:
    broken = document("invoice").replace("pdf_url", "pdf_link")
    errors = validate(build_schema(schema_text()), parse(broken))
    assert any("pdf_link" in e.message for e in errors)


def test_invoice_selection_covers_every_field_invoice_created_needs() -> None:
    text = document("invoice_items")
    for field in (
        "total_ex_vat",
        "reimbursement",
        "lines",
        "orders",
        "customer",
        "vat",
        "created_at",
    ):
        assert field in text
