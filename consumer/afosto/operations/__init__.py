"""GraphQL documents of the Afosto operations, loaded with the fragments they use."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Final, Literal

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    NameNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableDefinitionNode,
    VariableNode,
    parse,
    print_ast,
    visit,
)
from graphql.language import Visitor

OperationName = Literal["order", "invoice", "invoice_items", "probe"]
OPERATIONS: Final[tuple[OperationName, ...]] = ("order", "invoice", "invoice_items", "probe")


def _read(name: str) -> str:
    return files(__package__).joinpath(f"{name}.graphql").read_text(encoding="utf-8")


class _Spreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: object) -> None:
        self.names.add(node.name.value)


def _spreads(node: Node) -> set[str]:
    collector = _Spreads()
    visit(node, collector)
    return collector.names


@cache
def document(name: OperationName) -> str:
    """The operation's text with every fragment it needs appended (none it does not)."""
    return _with_fragments(parse(_read(name)))


def batch_alias(index: int) -> str:
    """The alias (and variable name) of the `index`-th invoice in a batched query."""
    return f"i{index}"


@cache
def invoice_batch(size: int) -> str:
    """`size` aliased copies of the `invoice` operation's field in one query (i0, i1, ...).

    Built from invoice.graphql's own field node, so the selection set cannot drift from the
    single query's: `query InvoiceBatch($i0: String!, ...) { i0: invoice(id: $i0) {...} ... }`.
    """
    if size < 1:
        raise ValueError("a batch holds at least one invoice")
    single = parse(_read("invoice"))
    operation = next(d for d in single.definitions if isinstance(d, OperationDefinitionNode))
    (field,) = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
    (variable,) = operation.variable_definitions or ()
    (argument,) = field.arguments or ()
    aliases = [batch_alias(i) for i in range(size)]

    def var(alias: str) -> VariableNode:
        return VariableNode(name=NameNode(value=alias))

    batch = OperationDefinitionNode(
        operation=operation.operation,
        name=NameNode(value="InvoiceBatch"),
        variable_definitions=tuple(
            VariableDefinitionNode(variable=var(a), type=variable.type) for a in aliases
        ),
        directives=(),
        selection_set=SelectionSetNode(
            selections=tuple(
                FieldNode(
                    alias=NameNode(value=a),
                    name=field.name,
                    arguments=(ArgumentNode(name=argument.name, value=var(a)),),
                    directives=field.directives,
                    selection_set=field.selection_set,
                )
                for a in aliases
            )
        ),
    )
    return _with_fragments(DocumentNode(definitions=(batch,)))


def invoice_request(ids: Sequence[str]) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(query, variables, the response key of each id) to read `ids` in one request.

    One id is exactly the single `invoice` query; more are `invoice_batch(len(ids))`.
    """
    if len(ids) == 1:
        return document("invoice"), {"id": ids[0]}, ("invoice",)
    aliases = tuple(batch_alias(i) for i in range(len(ids)))
    return invoice_batch(len(ids)), dict(zip(aliases, ids, strict=True)), aliases


def _with_fragments(operation: DocumentNode) -> str:
    fragments = {
        d.name.value: d
        for d in parse(_read("fragments")).definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    needed: list[str] = []
    todo = sorted(_spreads(operation))
    while todo:
        fragment = todo.pop()
        if fragment not in needed:
            needed.append(fragment)
            todo.extend(sorted(_spreads(fragments[fragment])))
    parts = [print_ast(operation)] + [print_ast(fragments[f]) for f in sorted(needed)]
    return "\n\n".join(parts)
