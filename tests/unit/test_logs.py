"""Logging: JSON and text lines, extra fields, and secrets masked everywhere they could leak."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Literal

import pytest

from consumer.logs import configure_logging

SECRETS = ["key-123456", "whsec-abcdef", "pa\"ss'word"]


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _log(fmt: Literal["json", "text"]) -> str:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt=fmt, secrets=SECRETS, stream=stream)
    log = logging.getLogger("invoicer.test")
    log.info("using key %s", "key-123456", extra={"order_id": "o-1", "note": "whsec-abcdef"})
    try:
        raise RuntimeError("auth failed for pa\"ss'word")
    except RuntimeError:
        log.exception("boom")
    log.debug("hidden below level")
    return stream.getvalue()


@pytest.mark.usefixtures("restore_root")
def test_json_lines_carry_extras_and_mask_secrets() -> None:
    out = _log("json")
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [d["msg"] for d in lines] == ["using key ***", "boom"]
    assert lines[0]["order_id"] == "o-1"
    assert lines[0]["note"] == "***"
    assert lines[0]["level"] == "INFO"
    assert "RuntimeError" in lines[1]["exc"]
    for secret in SECRETS:
        assert secret not in out
        assert json.dumps(secret)[1:-1] not in out


@pytest.mark.usefixtures("restore_root")
def test_text_lines_mask_secrets_in_tracebacks() -> None:
    out = _log("text")
    assert "using key *** order_id=o-1 note=***" in out
    assert "auth failed for ***" in out
    assert "hidden below level" not in out
    for secret in SECRETS:
        assert secret not in out


@pytest.mark.usefixtures("restore_root")
def test_configuring_twice_keeps_one_handler() -> None:
    configure_logging(fmt="text", stream=io.StringIO())
    configure_logging(fmt="json", stream=io.StringIO())
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "invoicer"]
    assert len(ours) == 1
