"""What RabbitMQ 4.x refuses, caught in the source (docs/rabbitmq.md): the broker here is 3.10,
which still accepts transient non-exclusive queues (disabled by default from 4.3) and global QoS.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("consumer", "handlers", "schemas", "sandbox", "bench", "tests")


def _calls(method: str) -> Iterator[tuple[str, ast.Call]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == method
                ):
                    yield f"{path.relative_to(ROOT)}:{node.lineno}", node


def _true(call: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def test_every_declared_queue_is_durable_exclusive_or_passive() -> None:
    calls = list(_calls("declare_queue"))
    assert len(calls) > 10, "the scan found too few declarations to be looking at the code"
    transient = [
        where
        for where, call in calls
        if not any(_true(call, flag) for flag in ("durable", "exclusive", "passive"))
    ]
    assert transient == [], f"transient non-exclusive queues (refused by RabbitMQ 4.3): {transient}"


@pytest.mark.parametrize("method", ["set_qos", "basic_qos"])
def test_no_global_qos(method: str) -> None:
    global_qos = [
        where
        for where, call in _calls(method)
        if _true(call, "global_") or _true(call, "all_channels")
    ]
    assert global_qos == [], f"global QoS (deprecated in RabbitMQ 4.x): {global_qos}"
