"""Service settings: one class, nested groups, flat `INVOICER_*` environment names (DESIGN §5).

Every field's alias is its environment name without the prefix, so `INVOICER_AMQP_URL` fills
`settings.amqp.url`. Values come from the environment, then a `.env` file; `load_settings`
validates them and stops with one line per bad setting, named as the operator wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, TypeVar, get_args
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from consumer.durations import format_duration, parse_duration
from consumer.settings_env import FlatSource, describe, env_fields, nest, read_flat
from handlers.ports import CrashPoint

ENV_PREFIX = "INVOICER_"
# Values of these never appear in messages: the AMQP URL carries the broker password.
SECRET_ENV_NAMES = frozenset(
    {"INVOICER_AMQP_URL", "INVOICER_AFOSTO_API_KEY", "INVOICER_WEBHOOK_SECRETS"}
)
CRASH_POINTS: tuple[str, ...] = get_args(CrashPoint)  # the names handlers.ports defines

_T = TypeVar("_T", int, timedelta)
# Shorter secrets are guessable, and the log redactor (consumer.logs) skips very short strings.
MIN_SECRET_LENGTH = 8
# Dense enough that rounding a delay up to a tier costs at most ~2.5x (PDF polls, rechecks).
DEFAULT_WAIT_TIERS = tuple(
    timedelta(seconds=s) for s in (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
)


def _between(lo: _T, hi: _T) -> AfterValidator:
    def show(v: _T) -> str:
        return format_duration(v) if isinstance(v, timedelta) else str(v)

    def check(value: _T) -> _T:
        if not lo <= value <= hi:
            raise ValueError(f"must be between {show(lo)} and {show(hi)}")
        return value

    return AfterValidator(check)


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
EventLoop = Literal["auto", "uvloop", "asyncio"]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AmqpSettings(_Group):
    """The broker connection and the names this installation declares on it."""

    url: SecretStr = Field(SecretStr("amqp://guest:guest@localhost:5672/"), alias="AMQP_URL")
    input_exchange: Name = Field("fulfilment", alias="INPUT_EXCHANGE")
    output_exchange: Name = Field("invoicing", alias="OUTPUT_EXCHANGE")
    queue_prefix: Name = Field("invoicer", alias="QUEUE_PREFIX")
    publish_timeout: Annotated[
        Duration, _between(timedelta(milliseconds=100), timedelta(minutes=5))
    ] = Field(timedelta(seconds=10), alias="PUBLISH_TIMEOUT")
    connect_timeout: Annotated[Duration, _between(timedelta(seconds=1), timedelta(minutes=5))] = (
        Field(timedelta(seconds=10), alias="CONNECT_TIMEOUT")
    )
    # Quorum queues requeue a crashed consumer's message forever unless told otherwise.
    delivery_limit: Annotated[int, _between(1, 1000)] = Field(20, alias="DELIVERY_LIMIT")
    wait_tiers: Annotated[tuple[Duration, ...], BeforeValidator(_split_commas)] = Field(
        DEFAULT_WAIT_TIERS, alias="WAIT_TIERS"
    )

    @field_validator("url")
    @classmethod
    def _amqp_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("must be an amqp:// or amqps:// URL with a host")
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            # Caught here, a bad port would surface later from aiormq, naming no setting.
            raise ValueError("has a port that is not a number between 0 and 65535") from None
        return value

    @field_validator("wait_tiers")
    @classmethod
    def _tiers(cls, value: tuple[timedelta, ...]) -> tuple[timedelta, ...]:
        if not value:
            raise ValueError("needs at least one delay")
        if any(t < timedelta(milliseconds=10) or t > timedelta(days=7) for t in value):
            raise ValueError("every delay must be between 10ms and 7d")
        return tuple(sorted(set(value)))

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, fit for logs and `check` output."""
        return redact_url(self.url.get_secret_value())


class AfostoSettings(_Group):
    """Afosto's GraphQL endpoint and how patiently to talk to it."""

    url: str = Field("https://afosto.app/graphql", alias="AFOSTO_URL")
    api_key: SecretStr = Field(SecretStr(""), alias="AFOSTO_API_KEY")  # empty: `run` refuses
    timeout: Annotated[Duration, _between(timedelta(milliseconds=100), timedelta(minutes=5))] = (
        Field(timedelta(seconds=10), alias="AFOSTO_TIMEOUT")
    )
    max_tries: Annotated[int, _between(1, 10)] = Field(3, alias="AFOSTO_MAX_TRIES")
    retry_budget: Annotated[Duration, _between(timedelta(0), timedelta(minutes=5))] = Field(
        timedelta(seconds=10), alias="AFOSTO_RETRY_BUDGET"
    )

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        if 0 < len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value


class WebhookSettings(_Group):
    """Secrets accepted on `POST /webhooks/afosto`; several at once allow rotation."""

    secrets: Annotated[tuple[SecretStr, ...], BeforeValidator(_split_commas)] = Field(
        (), alias="WEBHOOK_SECRETS"
    )

    @field_validator("secrets")
    @classmethod
    def _long_enough(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(s.get_secret_value()) < MIN_SECRET_LENGTH for s in value):
            raise ValueError(f"each secret must be at least {MIN_SECRET_LENGTH} characters")
        return value


class HttpSettings(_Group):
    host: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:%-]{1,253}$")] = Field(
        "0.0.0.0", alias="HTTP_HOST"
    )
    port: Annotated[int, _between(0, 65535)] = Field(8080, alias="HTTP_PORT")


class PipelineSettings(_Group):
    """How many messages at once, how long to wait for Afosto, how to retry."""

    concurrency: Annotated[int, _between(1, 1000)] = Field(16, alias="CONCURRENCY")
    # Deliveries each stage consumer may hold; 0 = CONCURRENCY. Above it, a stage keeps its next
    # deliveries at hand while the others' work takes the concurrency slots.
    prefetch: Annotated[int, _between(0, 10000)] = Field(0, alias="PREFETCH")
    pdf_deadline: Annotated[Duration, _between(timedelta(seconds=1), timedelta(days=7))] = Field(
        timedelta(minutes=30), alias="PDF_DEADLINE"
    )
    recheck_deadline: Annotated[Duration, _between(timedelta(seconds=1), timedelta(days=7))] = (
        Field(timedelta(hours=1), alias="RECHECK_DEADLINE")
    )
    drain_deadline: Annotated[Duration, _between(timedelta(0), timedelta(minutes=10))] = Field(
        timedelta(seconds=30), alias="DRAIN_DEADLINE"
    )
    max_attempts: Annotated[int, _between(1, 100)] = Field(8, alias="MAX_ATTEMPTS")
    retry_delay: Annotated[Duration, _between(timedelta(milliseconds=10), timedelta(hours=1))] = (
        Field(timedelta(seconds=5), alias="RETRY_DELAY")
    )
    max_message_bytes: Annotated[int, _between(1024, 16 * 1024 * 1024)] = Field(
        256 * 1024, alias="MAX_MESSAGE_BYTES"
    )

    @property
    def stage_prefetch(self) -> int:
        """The AMQP prefetch of each stage consumer."""
        return self.prefetch or self.concurrency

    # uvloop: cheaper transport writes and callbacks, the bulk of the service's own CPU.
    event_loop: EventLoop = Field("auto", alias="EVENT_LOOP")

    @field_validator("event_loop", mode="before")
    @classmethod
    def _loop_name(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class LogSettings(_Group):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="LOG_LEVEL")
    format: Literal["json", "text"] = Field("json", alias="LOG_FORMAT")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class TestingSettings(_Group):
    """Test-only switches; never set them in production."""

    crash_at: CrashPoint | None = Field(None, alias="CRASH_AT")


class Settings(BaseSettings):
    """Everything the service can be told; see `ENV_NAMES` for the flat environment names."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_file=".env")

    amqp: AmqpSettings = AmqpSettings()
    afosto: AfostoSettings = AfostoSettings()
    webhook: WebhookSettings = WebhookSettings()
    http: HttpSettings = HttpSettings()
    pipeline: PipelineSettings = PipelineSettings()
    log: LogSettings = LogSettings()
    testing: TestingSettings = TestingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        flat = read_flat(os.environ, Path(".env"), ENV_PREFIX)
        return (init_settings, FlatSource(settings_cls, env_fields(cls, ENV_PREFIX), flat))

    def secret_values(self) -> list[str]:
        """Every secret in force (API key, webhook secrets, passwords in URLs), for redaction."""
        values = [self.afosto.api_key.get_secret_value()]
        values += [s.get_secret_value() for s in self.webhook.secrets]
        url = self.amqp.url.get_secret_value()
        # Libraries may echo a password as written or percent-decoded; mask both spellings.
        for password in (urlsplit(url).password, urlsplit(self.afosto.url).password):
            values += [password or "", unquote(password or "")]
        values.append(url)
        return list(dict.fromkeys(v for v in values if v))


class SettingsError(Exception):
    """One or more settings are wrong; the message names each, one per line."""


ENV_NAMES: Mapping[str, str] = {
    env: f"{g}.{a}" for env, (g, a, _) in env_fields(Settings, ENV_PREFIX).items()
}
"""Flat environment name → `group.attribute`, e.g. `INVOICER_AMQP_URL` → `amqp.url`."""


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Validated settings from `environ` (default: the process) and `env_file` if it exists."""
    env_path = None if env_file is None else Path(env_file)
    flat = read_flat(os.environ if environ is None else environ, env_path, ENV_PREFIX)
    fields = env_fields(Settings, ENV_PREFIX)
    try:
        return Settings.model_validate(nest(fields, flat))
    except ValidationError as exc:
        raise SettingsError(describe(exc, fields, SECRET_ENV_NAMES)) from None


def unknown_env_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """`INVOICER_*` variables that name no setting (typos the operator should hear about)."""
    env = os.environ if environ is None else environ
    return sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in ENV_NAMES)


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
