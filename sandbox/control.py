"""JSON control API under /_control: faults, modes, ledger and the simulator. No faults apply
here and no key is needed (bind the sandbox to localhost)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.errors import ApiError
from sandbox.model import Order
from sandbox.publish import PublishError
from sandbox.server import SANDBOX

routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.json_response(
        body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False) + "\n"
    )


def guarded(handler: Handler) -> Handler:
    """Turn bad input into 400, unknown ids into 404 and failed publishing into 503."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _reply({"error": exc.message}, 404 if exc.code == "NOT_FOUND" else 400)
        except KeyError as exc:
            return _reply({"error": f"unknown id {exc.args[0]}"}, 404)
        except (ValueError, TypeError) as exc:
            return _reply({"error": str(exc)}, 400)
        except PublishError as exc:
            # The step itself happened; only its announcement failed (see GET /_control/events).
            return _reply({"error": f"publishing failed: {exc}"}, 503)

    return wrapper


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _flag(body: dict[str, Any], name: str, *, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def order_brief(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "number": order.number,
        "status": order.status,
        "policy": order.policy,
        "customer_id": order.customer.id,
        "item_ids": [u.id for line in order.lines for u in line.units],
        "actions": {a.action: a.ids for a in order.actions},
        "invoices": [i.id for i in order.invoices],
    }


@routes.get("/_control/health")
async def health(_request: web.Request) -> web.Response:
    return _reply({"ok": True})


@routes.get("/_control/settings")
@routes.patch("/_control/settings")
@guarded
async def settings(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    changes = await _body(request) if request.method == "PATCH" else {}
    unknown = set(changes) - {"lenient", "http_status_mode", "response_cache"}
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    if "lenient" in changes:
        sandbox.store.lenient = _flag(changes, "lenient")
    if "http_status_mode" in changes:
        sandbox.http_status_mode = _flag(changes, "http_status_mode")
    if "response_cache" in changes:
        sandbox.cache.enabled = _flag(changes, "response_cache")
    return _reply(
        {
            "lenient": sandbox.store.lenient,
            "http_status_mode": sandbox.http_status_mode,
            "response_cache": sandbox.cache.enabled,
            "seed": sandbox.faults.seed,
        }
    )


@routes.get("/_control/faults")
@routes.patch("/_control/faults")
@guarded
async def faults(request: web.Request) -> web.Response:
    controller = request.app[SANDBOX].faults
    if request.method == "PATCH":
        controller.configure(**await _body(request))
    return _reply({"seed": controller.seed, **controller.config.as_dict()})


@routes.post("/_control/faults/reset")
@guarded
async def faults_reset(request: web.Request) -> web.Response:
    controller = request.app[SANDBOX].faults
    seed = (await _body(request)).get("seed")
    controller.reset(None if seed is None else int(seed))
    return _reply({"seed": controller.seed, **controller.config.as_dict()})


@routes.get("/_control/ledger")
async def ledger(request: web.Request) -> web.Response:
    return _reply(request.app[SANDBOX].ledger.summary())


@routes.get("/_control/ledger/invoices")
async def ledger_invoices(request: web.Request) -> web.Response:
    invoices = request.app[SANDBOX].ledger.invoices
    return _reply(
        [
            {
                "id": i.id,
                "number": i.number,
                "customer_id": i.customer.id,
                "order_ids": [o.id for o in i.orders],
                "item_ids": sorted(i.item_ids),
                "total": i.total,
                "pdf": i.pdf_ready_at is not None,
            }
            for i in invoices
        ]
    )


@routes.get("/_control/orders")
async def list_orders(request: web.Request) -> web.Response:
    return _reply([order_brief(o) for o in request.app[SANDBOX].store.orders.values()])


@routes.post("/_control/orders")
@guarded
async def create_orders(request: web.Request) -> web.Response:
    sim = request.app[SANDBOX].simulator
    body = await _body(request)
    created = []
    for _ in range(int(body.get("count", 1))):
        order = await sim.create_order(
            policy=body.get("policy", "AFTER_SHIPMENT"), b2b=body.get("b2b")
        )
        if body.get("ship"):
            await sim.ship(order.id, fraction=float(body.get("ship_fraction", 1.0)))
        created.append(order_brief(order))
    return _reply(created, 201)


@routes.get("/_control/orders/{order_id}")
@guarded
async def get_order(request: web.Request) -> web.Response:
    order = request.app[SANDBOX].store.get_order(request.match_info["order_id"])
    return _reply(order_brief(order))


@routes.post("/_control/orders/{order_id}/{step:ship|cancel|return|approve|finish}")
@guarded
async def order_step(request: web.Request) -> web.Response:
    sim = request.app[SANDBOX].simulator
    order_id, step = request.match_info["order_id"], request.match_info["step"]
    body = await _body(request)
    ids = body.get("item_ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise ValueError("item_ids must be a list of strings")
    fraction = float(body.get("fraction", 1.0))
    if step == "ship":
        result = await sim.ship(order_id, ids, fraction=fraction)
    elif step == "return":
        result = await sim.return_items(order_id, ids, fraction=fraction)
    elif step == "approve":
        result = await sim.approve(order_id, ids, finish=_flag(body, "finish", default=True))
    elif step == "finish":
        result = await sim.finish(order_id, ids)
    else:
        if ids is None:
            raise ValueError("cancel needs item_ids")
        result = await sim.cancel(order_id, ids)
    return _reply(result.as_dict())


@routes.get("/_control/events")
async def events(request: web.Request) -> web.Response:
    published = request.app[SANDBOX].simulator.published.values()
    return _reply(
        [
            {"channel": p.channel, "id": p.id, "name": p.name, "order_id": p.order_id}
            for p in published
        ]
    )


@routes.post("/_control/events/{message_id}/republish")
@guarded
async def republish(request: web.Request) -> web.Response:
    copies = int((await _body(request)).get("copies", 1))
    if copies < 1:
        raise ValueError("copies must be at least 1")
    sent = await request.app[SANDBOX].simulator.republish(request.match_info["message_id"], copies)
    return _reply({"republished": sent})
