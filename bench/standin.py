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
import signal
from typing import Any

import orjson

from bench.standin_http import Request, Routes, http_server
from bench.standin_state import Refused, State

OPERATIONS = {
    "Order": "order",
    "InvoiceItems": "mutation",
    "Invoice": "invoice",
    "InvoiceBatch": "invoice_batch",
    "Probe": "probe",
}


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
                    raise Refused("NOT_FOUND", "order not found")
                answer = state.order_answer(order)
            elif operation == "invoice":
                invoice = state.invoices.get(variables.get("id", ""))
                if invoice is None:
                    raise Refused("NOT_FOUND", "invoice not found")
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
                raise Refused("GRAPHQL_VALIDATION_FAILED", "unknown operation")
        except Refused as refused:
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
