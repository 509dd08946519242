"""Generate the published contracts from the models: `python -m schemas.contracts [--check]`.

Writes docs/events/<event_type>.schema.json (JSON Schema 2020-12 per outbound event) and
docs/asyncapi.yaml (AsyncAPI 3.0: the inbound order events and the outbound invoicing events).
`--check` writes nothing and exits 1 when a file is stale (a unit test does the same).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.inbound import EVENT_TYPES, TriggerEvent
from schemas.outbound import SCHEMA_VERSION, InvoiceCreated, PdfReady

OUTBOUND: Final[dict[str, type[BaseModel]]] = {
    "invoice.created": InvoiceCreated,
    "invoice.pdf_ready": PdfReady,
}
_ID_BASE: Final = "https://afosto-invoicer.invalid/events/"
_DEFAULT_ROOT: Final = Path(__file__).resolve().parents[1]
_DELIVERY: Final = (
    "Delivery is at-least-once: dedupe on event_id, which is deterministic per (invoice, event "
    "type). For one invoice, invoice.pdf_ready is only published after invoice.created was "
    "confirmed by the broker. Amounts are integer cents."
)


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one outbound event."""
    schema = OUTBOUND[event_type].model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_ID_BASE}{event_type}.schema.json",
        **schema,
    }


def _inbound_schema(schemas: dict[str, Any]) -> None:
    # invoicer_recheck is our own re-check state riding on the trigger, not part of the contract.
    trigger = schemas["TriggerEvent"]
    trigger["properties"].pop("invoicer_recheck", None)
    schemas.pop("RecheckState", None)
    trigger["description"] = (
        "An order event; only a trigger (Afosto's order.actions decides what is invoiced). "
        "event_id may instead come as the AMQP message_id. Extra fields are accepted. "
        "JSON, UTF-8, at most 256 KiB."
    )


def _amqp_channel(exchange: str, routing_key: str, ref: str) -> dict[str, Any]:
    return {
        "address": routing_key,
        "messages": {ref: {"$ref": f"#/components/messages/{ref}"}},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {"name": exchange, "type": "topic", "durable": True, "vhost": "/"},
                "bindingVersion": "0.3.0",
            }
        },
    }


def _camel(routing_key: str) -> str:
    head, *rest = routing_key.replace("_", ".").split(".")
    return head + "".join(p.capitalize() for p in rest)


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of everything the service reads and writes on the broker."""
    models: list[tuple[type[BaseModel], Any]] = [
        (TriggerEvent, "validation"),
        *((m, "serialization") for m in OUTBOUND.values()),
    ]
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = top["$defs"]
    _inbound_schema(schemas)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type in EVENT_TYPES:
        name = _camel(event_type)
        channels[name] = _amqp_channel("fulfilment", event_type, "orderEvent")
        operations[f"receive{name[0].upper()}{name[1:]}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"{event_type} from the fulfilment pipeline (INVOICER_INPUT_EXCHANGE).",
        }
    messages["orderEvent"] = {
        "name": "orderEvent",
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/TriggerEvent"},
    }
    for event_type, model in OUTBOUND.items():
        name = _camel(event_type)
        channels[name] = _amqp_channel("invoicing", event_type, name)
        operations[f"publish{name[0].upper()}{name[1:]}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"{event_type} on exchange INVOICER_OUTPUT_EXCHANGE, persistent, mandatory.",
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": "0.3.0"}},
        }
        messages[name] = {
            "name": event_type,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip().splitlines()[0],
            "description": (
                f"AMQP properties: message_id = event_id, correlation_id = the triggering order "
                f"event's id (as in the payload), type = {event_type}, routing key = "
                f"{event_type}, delivery_mode 2 (persistent)."
            ),
            "contentType": "application/json",
            "correlationId": {"location": "$message.payload#/correlation_id"},
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
            "bindings": {"amqp": {"messageType": event_type, "bindingVersion": "0.3.0"}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "afosto-invoicer",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": "Order events in, Afosto invoices out. " + _DELIVERY,
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "Any RabbitMQ; exchange names are settings (defaults shown).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def rendered() -> dict[str, str]:
    """Every generated file (path relative to the repo root) with its exact text."""
    files = {
        f"docs/events/{t}.schema.json": json.dumps(event_schema(t), indent=2) + "\n"
        for t in OUTBOUND
    }
    header = "# Generated by `python -m schemas.contracts` from the pydantic models; do not edit.\n"
    files["docs/asyncapi.yaml"] = header + yaml.safe_dump(
        asyncapi(), sort_keys=False, allow_unicode=True, width=100
    )
    return files


def stale(root: Path) -> list[str]:
    """Generated files under `root` that are missing or differ from the models."""
    return [
        path
        for path, text in rendered().items()
        if not (root / path).exists() or (root / path).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.contracts", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--root", type=Path, default=_DEFAULT_ROOT, help="repository root")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.root)
        for path in outdated:
            print(f"stale: {path} (run: python -m schemas.contracts)", file=sys.stderr)
        return 1 if outdated else 0
    for path, text in rendered().items():
        target = args.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
