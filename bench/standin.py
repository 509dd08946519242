"""A zero-latency Afosto stand-in: the three operations the service sends, at minimal CPU.

No GraphQL engine: the operation is told by its name (`query Order(`, `mutation InvoiceItems(`,
`query Invoice(`, `query InvoiceBatch(` — the client's aliased `iN: invoice(id: $iN)` reads,
counted as one "invoice" call —, `query Probe(`), and answers are built from a tiny in-memory
state. Each order lists its units under INVOICE until they are invoiced; invoiceItems creates
the invoice with `pdf_url` set at once or after `--pdf-delay` (U(min, max) with
`--pdf-delay-max`). It refuses a repeated invoice_id or units no longer invoiceable with
VALIDATION_ERROR, as the sandbox does, so the service's conflict path still runs. It exists so
bench/pipeline.py can show the service's own cost as a ratio of the broker ceiling.

It shares the service's two cores, so its own CPU distorts that ratio: it speaks HTTP/1.1 on a
bare asyncio Protocol (bench/standin_http.py), on uvloop when importable, and keeps each
order's and each ready invoice's answer as bytes until it changes.

Control (no key): POST /_control/orders {"count": n, "items": k} → [{"id", "item_ids"}],
GET /_control/ledger (invoices, calls by operation and outcome, invoiced_more_than_once),
GET /_control/health. Run: .venv/bin/python -m bench.standin --port 8091
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.standin_http import Request, Routes, http_server

PRICE, VAT_RATE = 1210, 21  # cents incl. VAT per unit; 21 %
EX_VAT = round(PRICE * 100 / (100 + VAT_RATE))
OPERATIONS = {
    "Order": "order",
    "InvoiceItems": "mutation",
    "Invoice": "invoice",
    "InvoiceBatch": "invoice_batch",
    "Probe": "probe",
}


@dataclass
class Order:
    id: str
    number: str
    customer: dict[str, Any]
    units: list[str]
    invoiceable: list[str]
    invoices: list[str] = field(default_factory=list)
    answer: bytes | None = None  # the whole `order` answer, until this order changes


@dataclass
class Invoice:
    body: dict[str, Any]  # everything but pdf_url
    pdf_at: float  # time.monotonic() from which pdf_url is set
    ready: bytes | None = None  # the whole `invoice` answer once pdf_url is set


class State:
    """Orders, invoices and call counts; one process, one event loop, so no locks."""

    def __init__(self, *, seed: int, pdf_delay: float, pdf_delay_max: float, base: str) -> None:
        self.rng = random.Random(f"standin:{seed}")
        self.pdf_delay, self.pdf_delay_max = pdf_delay, max(pdf_delay, pdf_delay_max)
        self.base = base
        self.orders: dict[str, Order] = {}
        self.unit_order: dict[str, str] = {}
        self.invoices: dict[str, Invoice] = {}
        self.unit_invoices: dict[str, list[str]] = {}
        self.calls: Counter[tuple[str, str]] = Counter()

    def create_order(self, items: int) -> Order:
        n = len(self.orders) + 1
        order_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        contact = {"id": f"contact-{n}", "email": f"c{n}@example.com"}
        customer = {
            "reference": f"cust-{n}",
            "contact": {**contact, "given_name": "Bench", "family_name": f"Customer {n}"},
            "organisation": None,
        }
        units = [f"{order_id}-u{i}" for i in range(items)]
        order = Order(order_id, f"{100000 + n}", customer, units, list(units))
        self.orders[order_id] = order
        for unit in units:
            self.unit_order[unit] = order_id
        return order

    def order_data(self, order: Order) -> dict[str, Any]:
        invoices = [
            {
                "id": i,
                "number": self.invoices[i].body["number"],
                "lines": self.invoices[i].body["lines"],
            }
            for i in order.invoices
        ]
        return {
            "id": order.id,
            "number": order.number,
            "currency": "EUR",
            "customer": order.customer,
            "items": [
                {
                    "ids": order.units,
                    "sku": "SKU-1",
                    "label": "Bench item",
                    "quantity": len(order.units),
                }
            ],
            "actions": [{"action": "INVOICE", "ids": order.invoiceable}]
            if order.invoiceable
            else [],
            "invoices": invoices,
        }

    def invoice_items(self, items: list[str], invoice_id: str) -> dict[str, Any]:
        """The new invoice, or raise _Refused."""
        if not items or len(set(items)) != len(items):
            raise _Refused("VALIDATION_ERROR", "items must be unique and not empty", "items")
        if invoice_id in self.invoices:
            raise _Refused("VALIDATION_ERROR", "invoice_id already exists", "invoice_id")
        order_ids = {self.unit_order.get(i) for i in items}
        if None in order_ids:
            raise _Refused("NOT_FOUND", "unknown item id", "items")
        orders = [self.orders[o] for o in sorted(o for o in order_ids if o)]
        if len({o.customer["contact"]["id"] for o in orders}) > 1:
            raise _Refused("VALIDATION_ERROR", "items of different customers", "items")
        if any(i not in o.invoiceable for o in orders for i in items if self.unit_order[i] == o.id):
            raise _Refused("VALIDATION_ERROR", "item not invoiceable", "items")
        number = f"INV-{len(self.invoices) + 1:07d}"
        lines: list[dict[str, Any]] = []
        total = ex_vat = 0
        for order in orders:
            ids = [i for i in items if self.unit_order[i] == order.id]
            order.invoiceable = [i for i in order.invoiceable if i not in ids]
            order.invoices.append(invoice_id)
            order.answer = None
            line_total, line_ex_vat = PRICE * len(ids), EX_VAT * len(ids)
            total, ex_vat = total + line_total, ex_vat + line_ex_vat
            lines.append(
                {
                    "ids": ids,
                    "order_id": order.id,
                    "sku": "SKU-1",
                    "label": "Bench item",
                    "quantity": len(ids),
                    "unit_price": PRICE,
                    "total": line_total,
                    "total_ex_vat": line_ex_vat,
                    "vat": {"rate": VAT_RATE, "amount": line_total - line_ex_vat},
                    "is_contra": False,
                }
            )
        for unit in items:
            self.unit_invoices.setdefault(unit, []).append(invoice_id)
        body = {
            "id": invoice_id,
            "number": number,
            "currency": "EUR",
            "created_at": int(time.time() * 1000),
            "customer": orders[0].customer,
            "orders": [{"id": o.id, "number": o.number} for o in orders],
            "lines": lines,
            "subtotal": total,
            "total": total,
            "total_ex_vat": ex_vat,
            "vat": [{"rate": VAT_RATE, "amount": total - ex_vat}],
            "reimbursement": {"status": "OPEN", "amount_paid": 0, "amount_due": total},
        }
        delay = self.pdf_delay
        if self.pdf_delay_max > self.pdf_delay:
            delay = self.rng.uniform(self.pdf_delay, self.pdf_delay_max)
        invoice = Invoice(body, time.monotonic() + delay)
        self.invoices[invoice_id] = invoice
        return self.invoice_data(invoice, time.monotonic() >= invoice.pdf_at)

    def invoice_data(self, invoice: Invoice, ready: bool) -> dict[str, Any]:
        pdf_url = f"{self.base}/pdf/{invoice.body['id']}.pdf" if ready else None
        return {**invoice.body, "pdf_url": pdf_url}

    def order_answer(self, order: Order) -> bytes:
        if order.answer is None:
            order.answer = orjson.dumps({"data": {"order": self.order_data(order)}})
        return order.answer

    def invoice_answer(self, invoice: Invoice) -> bytes:
        if invoice.ready is not None:
            return invoice.ready
        ready = time.monotonic() >= invoice.pdf_at
        answer = orjson.dumps({"data": {"invoice": self.invoice_data(invoice, ready)}})
        if ready:
            invoice.ready = answer
        return answer

    def invoice_batch(self, variables: dict[str, Any]) -> bytes:
        """`{iN: invoice | null}`, with a NOT_FOUND error whose path names each unknown alias."""
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        now = time.monotonic()
        for alias, invoice_id in variables.items():
            invoice = self.invoices.get(invoice_id)
            if invoice is None:
                data[alias] = None
                message = f"invoice {invoice_id} not found"
                errors.append(
                    {"message": message, "path": [alias], "extensions": {"code": "NOT_FOUND"}}
                )
            else:
                data[alias] = self.invoice_data(invoice, now >= invoice.pdf_at)
        return orjson.dumps({"data": data, "errors": errors} if errors else {"data": data})

    def ledger(self) -> dict[str, Any]:
        calls: dict[str, dict[str, int]] = {}
        for (operation, outcome), count in sorted(self.calls.items()):
            calls.setdefault(operation, {})[outcome] = count
        return {
            "invoices": len(self.invoices),
            "items_invoiced": len(self.unit_invoices),
            "invoiced_more_than_once": {u: i for u, i in self.unit_invoices.items() if len(i) > 1},
            "calls": calls,
        }


class _Refused(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def _error(code: str, message: str, field: str | None = None) -> bytes:
    ext: dict[str, Any] = {"code": code}
    if field is not None:
        ext["field"] = field
    return orjson.dumps({"data": None, "errors": [{"message": message, "extensions": ext}]})


_UNAUTHORIZED = _error("UNAUTHORIZED", "missing or wrong API key")


class Api:
    """What the stand-in answers, HTTP framing aside: one route table, one handler per route."""

    def __init__(self, state: State, api_key: str, latency_s: float) -> None:
        self.state = state
        self.bearer = f"Bearer {api_key}".encode()
        self.latency_s = latency_s
        self.routes: Routes = {
            b"/graphql": (b"POST", self.graphql),
            b"/_control/orders": (b"POST", self.create_orders),
            b"/_control/ledger": (b"GET", self.ledger),
            b"/_control/health": (b"GET", self.health),
        }

    def delay(self, request: Request) -> float:
        """`--latency-ms`, which only authorised GraphQL calls wait for."""
        graphql = request.path == b"/graphql" and request.method == b"POST"
        if graphql and request.auth == self.bearer:
            return self.latency_s
        return 0.0

    def graphql(self, request: Request) -> tuple[int, bytes]:
        state = self.state
        if request.auth != self.bearer:
            state.calls[("auth", "unauthorized")] += 1
            return 200, _UNAUTHORIZED
        payload = orjson.loads(request.body)
        document: str = payload.get("query", "")
        variables: dict[str, Any] = payload.get("variables") or {}
        head = document.lstrip().split("(", 1)[0].split()
        operation = OPERATIONS.get(head[-1] if head else "", "unknown")
        try:
            if operation in ("order", "probe"):
                order = state.orders.get(variables.get("id", ""))
                if order is None:
                    raise _Refused("NOT_FOUND", "order not found")
                answer = state.order_answer(order)
            elif operation == "invoice":
                invoice = state.invoices.get(variables.get("id", ""))
                if invoice is None:
                    raise _Refused("NOT_FOUND", "invoice not found")
                answer = state.invoice_answer(invoice)
            elif operation == "invoice_batch":
                operation = "invoice"  # one call, as the service's metrics count it
                answer = state.invoice_batch(variables)
            elif operation == "mutation":
                given = variables.get("input") or {}
                created = state.invoice_items(
                    list(given.get("items") or []), given.get("invoice_id", "")
                )
                answer = orjson.dumps({"data": {"invoiceItems": {"invoice": created}}})
            else:
                raise _Refused("GRAPHQL_VALIDATION_FAILED", "unknown operation")
        except _Refused as refused:
            state.calls[(operation, refused.code.lower())] += 1
            return 200, _error(refused.code, refused.message, refused.field)
        state.calls[(operation, "ok")] += 1
        return 200, answer

    def create_orders(self, request: Request) -> tuple[int, bytes]:
        given = orjson.loads(request.body) if request.body else {}
        count, items = int(given.get("count", 1)), int(given.get("items", 2))
        made = [self.state.create_order(items) for _ in range(count)]
        return 201, orjson.dumps([{"id": o.id, "item_ids": o.units} for o in made])

    def ledger(self, _request: Request) -> tuple[int, bytes]:
        return 200, orjson.dumps(self.state.ledger())

    def health(self, _request: Request) -> tuple[int, bytes]:
        return 200, b'{"ok":true}'


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    state = State(
        seed=args.seed, pdf_delay=args.pdf_delay, pdf_delay_max=args.pdf_delay_max, base=""
    )
    api = Api(state, args.api_key, args.latency_ms / 1000)
    delay = api.delay if api.latency_s else None
    async with http_server(api.routes, args.host, args.port, delay=delay) as port:
        state.base = f"http://{args.host}:{port}"
        # Start-up's objects live to the end; frozen, the collector stops re-scanning them on
        # every collection the growing state triggers (about a tenth of the CPU under load).
        gc.freeze()
        print(f"standin listening on {state.base}", flush=True)
        await stop.wait()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8091, help="0 picks a free port")
    p.add_argument("--api-key", default="standin-key-0123", help="Bearer key clients must send")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pdf-delay", type=float, default=0.0, help="seconds until pdf_url is set")
    p.add_argument("--pdf-delay-max", type=float, default=0.0, help="U(delay, max) when larger")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every API answer")
    p.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: on when importable (the service runs on it too)",
    )
    return p


def main() -> None:
    args = parser().parse_args()
    use_uvloop = args.uvloop
    if use_uvloop is None:
        use_uvloop = importlib.util.find_spec("uvloop") is not None
    if use_uvloop:
        import uvloop

        uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
