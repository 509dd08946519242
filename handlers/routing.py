"""The routing table: pipeline stage → how its bodies are parsed → which handler runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Final, TypeVar

from pydantic import BaseModel

from handlers.errors import Permanent
from handlers.issue import issue
from handlers.pdf import poll_pdf
from handlers.plan import plan
from handlers.ports import Context, Deps, Outgoing, Route, Stage
from schemas.inbound import TriggerEvent, parse_trigger
from schemas.internal import Intent, PdfCheck, parse_intent, parse_pdf_check
from schemas.parsing import InvalidMessage

M = TypeVar("M", bound=BaseModel)
Summary = dict[str, str | None]


def _route(
    stage: Stage,
    model: type[M],
    parse: Callable[[bytes, str | None, str | None], M],
    handle: Callable[[M, Deps, Context], Awaitable[list[Outgoing]]],
    summary: Callable[[M], Summary],
) -> Route:
    """A Route whose handler and summary accept exactly what `parse` produces."""

    def checked(message: BaseModel) -> M:
        if not isinstance(message, model):
            raise TypeError(f"stage {stage} expects {model.__name__}, got {type(message).__name__}")
        return message

    def parse_or_dead(body: bytes, content_type: str | None, message_id: str | None) -> M:
        try:
            return parse(body, content_type, message_id)
        except InvalidMessage as exc:
            raise Permanent(exc.reason, exc.detail) from None

    async def run(message: BaseModel, deps: Deps, ctx: Context) -> list[Outgoing]:
        return await handle(checked(message), deps, ctx)

    return Route(stage, parse_or_dead, run, lambda message: summary(checked(message)))


def _trigger_summary(e: TriggerEvent) -> Summary:
    return {"event_id": e.event_id, "order_id": e.order_id, "invoice_id": None}


def _intent_summary(i: Intent) -> Summary:
    return {"event_id": i.correlation_id, "order_id": i.order_id, "invoice_id": i.invoice_id}


def _pdf_summary(c: PdfCheck) -> Summary:
    order_id = ",".join(c.order_ids) or None  # an invoice may span several orders
    return {"event_id": c.correlation_id, "order_id": order_id, "invoice_id": c.invoice_id}


ROUTES: Final[Mapping[Stage, Route]] = MappingProxyType(
    {
        "triggers": _route("triggers", TriggerEvent, parse_trigger, plan, _trigger_summary),
        "intents": _route("intents", Intent, parse_intent, issue, _intent_summary),
        "pdf": _route("pdf", PdfCheck, parse_pdf_check, poll_pdf, _pdf_summary),
    }
)
