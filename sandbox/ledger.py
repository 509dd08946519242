"""The sandbox's books: every invoice, item → invoice ids, and call counts per outcome.

It is what tests and benchmarks use to prove "each item was invoiced exactly once"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sandbox.invoices import Invoice


class Ledger:
    """Records what happened; never consulted by the store when deciding anything."""

    def __init__(self, invoiceable: Callable[[], dict[str, list[str]]]) -> None:
        self._invoiceable = invoiceable
        self.invoices: list[Invoice] = []
        self.item_invoices: dict[str, list[str]] = {}
        self.calls: Counter[tuple[str, str]] = Counter()

    def record_invoice(self, invoice: Invoice) -> None:
        self.invoices.append(invoice)
        for item_id in sorted(invoice.item_ids):
            self.item_invoices.setdefault(item_id, []).append(invoice.id)

    def record_call(self, operation: str, outcome: str) -> None:
        self.calls[(operation, outcome)] += 1

    def invoiced_more_than_once(self) -> dict[str, list[str]]:
        """Item id → invoice ids, for every item on more than one invoice (should be empty)."""
        return {item: ids for item, ids in self.item_invoices.items() if len(ids) > 1}

    def never_invoiced(self) -> dict[str, list[str]]:
        """Order id → ids that are invoiceable right now but on no invoice (should be empty
        once the service has caught up)."""
        missing = {
            order_id: [i for i in ids if i not in self.item_invoices]
            for order_id, ids in self._invoiceable().items()
        }
        return {order_id: ids for order_id, ids in missing.items() if ids}

    def call_counts(self) -> dict[str, dict[str, int]]:
        """Operation → outcome → count."""
        table: dict[str, dict[str, int]] = {}
        for (operation, outcome), count in sorted(self.calls.items()):
            table.setdefault(operation, {})[outcome] = count
        return table

    def summary(self) -> dict[str, Any]:
        return {
            "invoices": len(self.invoices),
            "credit_invoices": sum(1 for i in self.invoices if i.is_credit),
            "items_invoiced": len(self.item_invoices),
            "invoiced_more_than_once": self.invoiced_more_than_once(),
            "never_invoiced": self.never_invoiced(),
            "calls": self.call_counts(),
        }
