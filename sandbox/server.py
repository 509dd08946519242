"""The sandbox's HTTP face: POST /graphql with faults, GET /pdf/<id>.pdf, and /_control."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.errors import STATUS, error_body
from sandbox.executor import Prepared
from sandbox.resolvers import RequestContext

if TYPE_CHECKING:
    from sandbox.runner import Sandbox

SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox")
PROXY_PAGES = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _reset(request: web.Request) -> web.Response:
    """Drop the connection with a TCP RST and no response at all."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # aiohttp cannot write this to the aborted transport; the client sees only the reset.
    return web.Response(status=599)


def _proxy_error(status: int, headers: dict[str, str] | None = None) -> web.Response:
    """What a load balancer in front of the API sends: a status with a small HTML page."""
    reason = PROXY_PAGES.get(status, "Too Many Requests")
    page = f"<html><body><h1>{status} {reason}</h1></body></html>"
    return web.Response(status=status, text=page, content_type="text/html", headers=headers)


async def graphql(request: web.Request) -> web.StreamResponse:
    """`POST /graphql`: auth, faults, then the (possibly cached) execution of the document."""
    sandbox = request.app[SANDBOX]
    ledger, faults = sandbox.ledger, sandbox.faults
    arrived = time.time()
    try:
        payload = await request.json(loads=json.loads)
        query = payload["query"]
        variables = payload.get("variables")
        operation_name = payload.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict | None):
            raise TypeError("query must be a string and variables an object")
    except (ValueError, TypeError, KeyError, AttributeError):
        ledger.record_call("other", "bad_request")
        return sandbox.error_response("BAD_REQUEST", "body must be JSON {query, variables}")
    prepared = sandbox.executor.prepare(query)
    operation = prepared.operation
    if request.headers.get("Authorization") != sandbox.bearer:
        ledger.record_call(operation, "unauthorized")
        return sandbox.error_response("UNAUTHORIZED", "Unauthorized")

    decision = faults.decide(operation)
    if decision.delay_s > 0:
        await asyncio.sleep(decision.delay_s)
    if decision.pre is not None:
        ledger.record_call(operation, decision.pre)
        if decision.pre == "reset":
            return _reset(request)
        if decision.pre == "http_429":
            return _proxy_error(429, {"Retry-After": decision.retry_after or "1"})
        if decision.pre == "internal_error":
            return sandbox.error_response("INTERNAL_SERVER_ERROR", "Internal server error")
        return _proxy_error(int(decision.pre.removeprefix("http_")))
    if faults.in_scope(operation) and not faults.bucket.take():
        ledger.record_call(operation, "rate_limited")
        return sandbox.error_response("RATE_LIMITED", "Too many requests")

    raw, outcome = _answer(sandbox, prepared, query, variables, operation_name, arrived)
    if decision.post == "hold":
        # The work is committed; the client times out first and cannot know the outcome.
        ledger.record_call(operation, f"held_{outcome}")
        await asyncio.sleep(faults.config.hold_s)
    elif decision.post == "malformed":
        ledger.record_call(operation, f"malformed_{outcome}")
        raw = raw[: max(1, len(raw) // 2)]
    else:
        ledger.record_call(operation, outcome)
    return web.Response(body=raw, content_type="application/json")


def _answer(
    sandbox: Sandbox,
    prepared: Prepared,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    now: float,
) -> tuple[bytes, str]:
    """The serialized response and its outcome; queries come from the cache when unchanged."""
    cache, revision = sandbox.cache, sandbox.store.revision
    key = None
    if prepared.operation != "mutation":
        key = cache.key(query, variables, operation_name)
        hit = cache.get(key, revision, now)
        if hit is not None:
            return hit.raw, hit.outcome
    context = RequestContext(sandbox.store, sandbox.base_url, now)
    body = sandbox.executor.execute(prepared, variables, context, operation_name)
    errors = body.get("errors")
    outcome = str(errors[0]["extensions"]["code"]).lower() if errors else "ok"
    raw = _dumps(body)
    if key is not None:
        cache.put(key, revision, now, raw, outcome)
    return raw, outcome


async def pdf(request: web.Request) -> web.Response:
    """`GET /pdf/<id>.pdf`: the rendered invoice once its PDF is due, else 404."""
    sandbox = request.app[SANDBOX]
    name = request.match_info["name"]
    invoice = sandbox.store.invoices.get(name.removesuffix(".pdf"))
    if (
        invoice is None
        or not name.endswith(".pdf")
        or invoice.pdf_ready_at is None
        or time.time() < invoice.pdf_ready_at
    ):
        raise web.HTTPNotFound(text="no such PDF (yet)")
    document = await sandbox.pdf_bytes(invoice)
    disposition = f'inline; filename="{invoice.number}.pdf"'
    return web.Response(
        body=document, content_type="application/pdf", headers={"Content-Disposition": disposition}
    )


def status_for(code: str, http_status_mode: bool) -> int:
    """HTTP status of a whole-request error: always 200, unless real statuses are on."""
    return STATUS[code] if http_status_mode else 200


def build_app(sandbox: Sandbox) -> web.Application:
    """The sandbox application: GraphQL, PDFs and the control API."""
    from sandbox.control import routes as control_routes

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[SANDBOX] = sandbox
    app.router.add_post("/graphql", graphql)
    app.router.add_get("/pdf/{name}", pdf)
    app.router.add_routes(control_routes)
    return app


__all__ = ["SANDBOX", "build_app", "error_body", "status_for"]
