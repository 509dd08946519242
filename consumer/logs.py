"""Logging: stdlib, configured once at the entry point; JSON for machines, text for people.

Secrets known at start-up (API key, webhook secrets, AMQP password) are masked in every
record's message, arguments, extra fields and traceback, and again in the formatted line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter "secrets" would mask ordinary words all over the log
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_NOISY = ("aio_pika", "aiormq", "aiohttp.access")


class Redactor:
    """Replaces every occurrence of the given secret values (and their JSON-escaped forms)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                forms.add(secret)
                forms.add(json.dumps(secret)[1:-1])
                forms.add(orjson.dumps(secret).decode()[1:-1])  # how JsonFormatter escapes it
        self._forms = sorted(
            forms, key=len, reverse=True
        )  # longest first: a URL before its password

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


class RedactingFilter(logging.Filter):
    """Masks secrets in the record itself, so every handler and formatter sees clean data."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the record's extra fields, exc."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        # orjson: the outcome line is written for every message, json.dumps cost ~3x more.
        return self._redact(orjson.dumps(doc, default=str).decode())


class TextFormatter(logging.Formatter):
    """`time level logger message key=value…` for people reading a terminal."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        if extras:
            head, _, tail = line.partition("\n")
            line = f"{head} {extras}" + (f"\n{tail}" if tail else "")
        return self._redact(line)


def configure_logging(
    *,
    level: str = "INFO",
    fmt: Literal["json", "text"] = "json",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install the one root handler (replacing an earlier one of ours) and return it."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("invoicer")
    handler.addFilter(RedactingFilter(redact))
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "invoicer"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler
