"""Settings: flat INVOICER_* names, defaults, .env files, durations, one line per error."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from consumer.durations import format_duration, parse_duration
from consumer.settings import ENV_NAMES, SettingsError, load_settings, redact_url


def test_defaults_match_the_design() -> None:
    s = load_settings({}, env_file=None)
    assert s.amqp.url.get_secret_value() == "amqp://guest:guest@localhost:5672/"
    assert s.afosto.url == "https://afosto.app/graphql"
    assert (s.amqp.input_exchange, s.amqp.output_exchange) == ("fulfilment", "invoicing")
    assert s.amqp.queue_prefix == "invoicer"
    assert (s.http.host, s.http.port) == ("0.0.0.0", 8080)
    assert s.pipeline.recheck_deadline == timedelta(hours=1)
    assert s.log.format == "json"
    assert s.testing.crash_at is None


def test_flat_names_fill_nested_groups() -> None:
    env = {
        "INVOICER_AMQP_URL": "amqp://u:hunter22@rabbit:5672/vh",
        "INVOICER_AFOSTO_URL": "http://127.0.0.1:9000/graphql",
        "INVOICER_AFOSTO_API_KEY": "key-123456",
        "INVOICER_WEBHOOK_SECRETS": "old-secret, new-secret",
        "INVOICER_QUEUE_PREFIX": "t1234",
        "INVOICER_CONCURRENCY": "32",
        "INVOICER_PDF_DEADLINE": "5m",
        "INVOICER_RECHECK_DEADLINE": "90",
        "INVOICER_WAIT_TIERS": "5s,200ms,1s",
        "INVOICER_LOG_LEVEL": "debug",
        "INVOICER_LOG_FORMAT": "TEXT",
        "INVOICER_CRASH_AT": "after_receive",
        "OTHER": "ignored",
    }
    s = load_settings(env, env_file=None)
    assert s.amqp.queue_prefix == "t1234"
    assert s.afosto.api_key.get_secret_value() == "key-123456"
    assert [x.get_secret_value() for x in s.webhook.secrets] == ["old-secret", "new-secret"]
    assert s.pipeline.concurrency == 32
    assert s.pipeline.pdf_deadline == timedelta(minutes=5)
    assert s.pipeline.recheck_deadline == timedelta(seconds=90)
    assert s.amqp.wait_tiers == (
        timedelta(milliseconds=200),
        timedelta(seconds=1),
        timedelta(seconds=5),
    )
    assert (s.log.level, s.log.format) == ("DEBUG", "text")
    assert s.testing.crash_at == "after_receive"
    assert s.amqp.safe_url == "amqp://u:***@rabbit:5672/vh"


def test_secrets_never_show_in_repr() -> None:
    env = {
        "INVOICER_AMQP_URL": "amqp://u:hunter22@rabbit/",
        "INVOICER_AFOSTO_API_KEY": "key-123456",
        "INVOICER_WEBHOOK_SECRETS": "whsec-abcdef",
    }
    s = load_settings(env, env_file=None)
    text = repr(s) + str(s) + s.model_dump_json()
    for secret in ("hunter22", "key-123456", "whsec-abcdef"):
        assert secret not in text
    assert set(s.secret_values()) >= {"hunter22", "key-123456", "whsec-abcdef"}


def test_passwords_in_urls_are_secrets_in_both_spellings() -> None:
    env = {
        "INVOICER_AMQP_URL": "amqp://u:hunter%4022@rabbit/",
        "INVOICER_AFOSTO_URL": "https://proxy:pr0xy-pass@afosto.example/graphql",
    }
    values = set(load_settings(env, env_file=None).secret_values())
    assert values >= {"hunter%4022", "hunter@22", "pr0xy-pass"}


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("INVOICER_QUEUE_PREFIX=fromfile\nINVOICER_HTTP_PORT=9001\n")
    s = load_settings({"INVOICER_HTTP_PORT": "9002"}, env_file=env_file)
    assert s.amqp.queue_prefix == "fromfile"
    assert s.http.port == 9002


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INVOICER_CONCURRENCY", "0", "INVOICER_CONCURRENCY: must be between 1 and 1000, got 0"),
        ("INVOICER_CONCURRENCY", "many", "INVOICER_CONCURRENCY: Input should be a valid integer"),
        (
            "INVOICER_HTTP_PORT",
            "70000",
            "INVOICER_HTTP_PORT: must be between 0 and 65535, got 70000",
        ),
        ("INVOICER_PDF_DEADLINE", "5x", "INVOICER_PDF_DEADLINE: expected seconds or a duration"),
        ("INVOICER_PDF_DEADLINE", "0s", "INVOICER_PDF_DEADLINE: must be between 1s and 7d, got 0s"),
        ("INVOICER_RECHECK_DEADLINE", "soon", "INVOICER_RECHECK_DEADLINE: expected seconds"),
        ("INVOICER_DRAIN_DEADLINE", "1h", "INVOICER_DRAIN_DEADLINE: must be between 0ms and 10m"),
        ("INVOICER_PUBLISH_TIMEOUT", "1ms", "INVOICER_PUBLISH_TIMEOUT: must be between 100ms"),
        ("INVOICER_AFOSTO_TIMEOUT", "-1", "INVOICER_AFOSTO_TIMEOUT: must be between"),
        ("INVOICER_AFOSTO_URL", "ftp://x", "INVOICER_AFOSTO_URL: must be an http:// or https://"),
        ("INVOICER_AMQP_URL", "http://u:pw-secret@h/", "INVOICER_AMQP_URL: must be an amqp://"),
        ("INVOICER_AMQP_URL", "amqp://u:pw-secret@h:99999/", "INVOICER_AMQP_URL: has a port"),
        ("INVOICER_AMQP_URL", "amqp://u:pw-secret@h:abc/", "INVOICER_AMQP_URL: has a port"),
        ("INVOICER_LOG_FORMAT", "xml", "INVOICER_LOG_FORMAT: Input should be 'json' or 'text'"),
        ("INVOICER_LOG_LEVEL", "loud", "INVOICER_LOG_LEVEL: Input should be"),
        ("INVOICER_QUEUE_PREFIX", "a b", "INVOICER_QUEUE_PREFIX: String should match pattern"),
        ("INVOICER_INPUT_EXCHANGE", "", "INVOICER_INPUT_EXCHANGE: String should match pattern"),
        ("INVOICER_OUTPUT_EXCHANGE", "x" * 101, "INVOICER_OUTPUT_EXCHANGE: String should match"),
        ("INVOICER_WAIT_TIERS", "1s,1ms", "INVOICER_WAIT_TIERS: every delay must be between"),
        ("INVOICER_WAIT_TIERS", "", "INVOICER_WAIT_TIERS: needs at least one delay"),
        ("INVOICER_DELIVERY_LIMIT", "0", "INVOICER_DELIVERY_LIMIT: must be between 1 and 1000"),
        ("INVOICER_MAX_ATTEMPTS", "0", "INVOICER_MAX_ATTEMPTS: must be between 1 and 100"),
        ("INVOICER_RETRY_DELAY", "2h", "INVOICER_RETRY_DELAY: must be between 10ms and 1h"),
        ("INVOICER_MAX_MESSAGE_BYTES", "10", "INVOICER_MAX_MESSAGE_BYTES: must be between 1024"),
        ("INVOICER_AFOSTO_MAX_TRIES", "0", "INVOICER_AFOSTO_MAX_TRIES: must be between 1 and 10"),
        ("INVOICER_CRASH_AT", "nowhere", "INVOICER_CRASH_AT: Input should be 'after_receive'"),
        ("INVOICER_WEBHOOK_SECRETS", "long-enough,pw-s", "INVOICER_WEBHOOK_SECRETS: each secret"),
        ("INVOICER_AFOSTO_API_KEY", "pw-s", "INVOICER_AFOSTO_API_KEY: must be at least 8"),
        ("INVOICER_HTTP_HOST", "", "INVOICER_HTTP_HOST: String should match pattern"),
        ("INVOICER_HTTP_HOST", "my host", "INVOICER_HTTP_HOST: String should match pattern"),
    ],
)
def test_each_bad_setting_is_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value}, env_file=None)
    assert str(caught.value).startswith(message)
    assert "pw-s" not in str(caught.value)


def test_every_bad_setting_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"INVOICER_CONCURRENCY": "0", "INVOICER_HTTP_PORT": "-1"}, env_file=None)
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["INVOICER_HTTP_PORT", "INVOICER_CONCURRENCY"]


def test_every_design_setting_has_its_flat_name() -> None:
    design = [
        "AMQP_URL",
        "AFOSTO_URL",
        "AFOSTO_API_KEY",
        "WEBHOOK_SECRETS",
        "INPUT_EXCHANGE",
        "OUTPUT_EXCHANGE",
        "QUEUE_PREFIX",
        "HTTP_HOST",
        "HTTP_PORT",
        "CONCURRENCY",
        "PDF_DEADLINE",
        "RECHECK_DEADLINE",
        "LOG_LEVEL",
        "LOG_FORMAT",
    ]
    assert {f"INVOICER_{n}" for n in design} <= set(ENV_NAMES)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30),
        ("1.5", 1.5),
        ("250ms", 0.25),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 172800),
    ],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_redact_url_masks_only_the_password() -> None:
    assert redact_url("amqps://bob:s3cr3t@h:5671/v") == "amqps://bob:***@h:5671/v"
    assert redact_url("amqp://h/") == "amqp://h/"


def test_prefetch_follows_concurrency_unless_set() -> None:
    same = load_settings({"INVOICER_CONCURRENCY": "24"}, env_file=None).pipeline
    own = load_settings(
        {"INVOICER_CONCURRENCY": "24", "INVOICER_PREFETCH": "8"}, env_file=None
    ).pipeline
    assert (same.prefetch, same.stage_prefetch) == (0, 24)
    assert (own.concurrency, own.stage_prefetch) == (24, 8)
    with pytest.raises(SettingsError, match="INVOICER_PREFETCH"):
        load_settings({"INVOICER_PREFETCH": "-1"}, env_file=None)
