"""Root resolvers and the computed Invoice.pdf_url; everything else is read from attributes."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLResolveInfo

from sandbox.errors import ApiError
from sandbox.invoices import Invoice
from sandbox.model import Order
from sandbox.store import Store

MAX_PAGE = 100


@dataclass(frozen=True)
class RequestContext:
    store: Store
    base_url: str
    now: float  # wall-clock seconds when the request arrived


Info = GraphQLResolveInfo["RequestContext"]


def _ctx(info: Info) -> RequestContext:
    return info.context


def order(_root: None, info: Info, id: str) -> Order:
    return _ctx(info).store.get_order(id)


def invoice(_root: None, info: Info, id: str) -> Invoice:
    return _ctx(info).store.get_invoice(id)


def invoice_items(_root: None, info: Info, input: dict[str, Any]) -> dict[str, Any]:
    created = _ctx(info).store.invoice_items(input["items"], input.get("invoice_id"))
    return {"invoice": created}


def pdf_url(invoice: Invoice, info: Info) -> str | None:
    context = _ctx(info)
    if invoice.pdf_ready_at is None or context.now < invoice.pdf_ready_at:
        return None
    return f"{context.base_url}/pdf/{invoice.id}.pdf"


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"order:{seq}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        kind, _, seq = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "order":
            raise ValueError(kind)
        return int(seq)
    except ValueError as exc:
        raise ApiError("VALIDATION_ERROR", "after is not a valid cursor", field="after") from exc


def orders(
    _root: None,
    info: Info,
    first: int | None = 10,
    after: str | None = None,
    created_at: dict[str, int] | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    """Newest first, Relay-style; `after` is the previous page's endCursor."""
    size = 10 if first is None else first
    if not 0 <= size <= MAX_PAGE:
        raise ApiError("VALIDATION_ERROR", f"first must be 0..{MAX_PAGE}", field="first")
    below = decode_cursor(after) if after is not None else None
    matches = (
        o
        for o in reversed(list(_ctx(info).store.orders.values()))
        if (below is None or o.seq < below)
        and _created_matches(o.created_at, created_at or {})
        and (action is None or any(a.action == action for a in o.actions))
    )
    page: list[Order] = []
    has_next = False
    for candidate in matches:
        if len(page) == size:
            has_next = True
            break
        page.append(candidate)
    edges = [{"cursor": encode_cursor(o.seq), "node": o} for o in page]
    return {
        "edges": edges,
        "nodes": page,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": below is not None,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _created_matches(created: int, bounds: dict[str, int]) -> bool:
    gt, gte, lt, lte = (bounds.get(k) for k in ("gt", "gte", "lt", "lte"))
    return (
        (gt is None or created > gt)
        and (gte is None or created >= gte)
        and (lt is None or created < lt)
        and (lte is None or created <= lte)
    )
