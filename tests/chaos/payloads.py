"""The invoice fields the sandbox ledger vouches for, from both sides, for invariant 2."""

from __future__ import annotations

from typing import Any

from sandbox.invoices import Invoice


def ledger_view(invoice: Invoice) -> dict[str, Any]:
    """The fields of `invoice.created.invoice` the ledger can vouch for."""
    return {
        "id": invoice.id,
        "number": invoice.number,
        "kind": "credit" if invoice.total < 0 else "invoice",
        "currency": invoice.currency,
        "subtotal": invoice.subtotal,
        "total": invoice.total,
        "total_ex_vat": invoice.total_ex_vat,
        "vat": [(float(v.rate), v.amount) for v in invoice.vat],
        "lines": [
            (
                sorted(ln.ids),
                ln.order_id,
                ln.sku,
                ln.quantity,
                ln.unit_price,
                ln.total,
                ln.total_ex_vat,
                ln.is_contra,
            )
            for ln in invoice.lines
        ],
        "orders": sorted(o.id for o in invoice.orders),
        "customer": invoice.customer.id,
    }


def event_view(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": payload.get("id"),
        "number": payload.get("number"),
        "kind": payload.get("kind"),
        "currency": payload.get("currency"),
        "subtotal": payload.get("subtotal"),
        "total": payload.get("total"),
        "total_ex_vat": payload.get("total_ex_vat"),
        "vat": [(float(v["rate"]), v["amount"]) for v in payload.get("vat", [])],
        "lines": [
            (
                sorted(ln["item_ids"]),
                ln["order_id"],
                ln["sku"],
                ln["quantity"],
                ln["unit_price"],
                ln["total"],
                ln["total_ex_vat"],
                ln["is_contra"],
            )
            for ln in payload.get("lines", [])
        ],
        "orders": sorted(o["id"] for o in payload.get("orders", [])),
        "customer": (payload.get("customer") or {}).get("id"),
    }
