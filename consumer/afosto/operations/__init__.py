"""GraphQL documents of the Afosto operations, loaded with the fragments they use."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Final, Literal

from graphql import FragmentDefinitionNode, FragmentSpreadNode, Node, parse, print_ast, visit
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
    fragments = {
        d.name.value: d
        for d in parse(_read("fragments")).definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    operation = parse(_read(name))
    needed: list[str] = []
    todo = sorted(_spreads(operation))
    while todo:
        fragment = todo.pop()
        if fragment not in needed:
            needed.append(fragment)
            todo.extend(sorted(_spreads(fragments[fragment])))
    parts = [print_ast(operation)] + [print_ast(fragments[f]) for f in sorted(needed)]
    return "\n\n".join(parts)
