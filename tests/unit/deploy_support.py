"""Shared by the deploy and docs tests: where things are, and settings defaults as text."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr

from consumer.durations import format_duration
from consumer.settings import ENV_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"


def defaults() -> Settings:
    return Settings.model_validate({})


def default_text(env: str) -> str:
    """The default of setting `env` as an operator would write it in the environment."""
    group, attr = ENV_NAMES[env].split(".")
    return render(getattr(getattr(defaults(), group), attr))


def render(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple):
        return ",".join(render(v) for v in value)
    return "" if value is None else str(value)
