"""Pydantic models: inbound triggers, internal messages, outbound events, Afosto responses."""

from schemas.afosto import Invoice, Order
from schemas.inbound import EVENT_TYPES, RecheckState, TriggerEvent, parse_trigger
from schemas.internal import Intent, PdfCheck, parse_intent, parse_pdf_check
from schemas.outbound import SCHEMA_VERSION, InvoiceCreated, InvoiceOut, PdfReady

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "Intent",
    "Invoice",
    "InvoiceCreated",
    "InvoiceOut",
    "Order",
    "PdfCheck",
    "PdfReady",
    "RecheckState",
    "TriggerEvent",
    "parse_intent",
    "parse_pdf_check",
    "parse_trigger",
]
