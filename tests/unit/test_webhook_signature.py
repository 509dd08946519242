"""Afosto's signature scheme: lowercase hex HMAC-SHA256 of the raw body, any of several secrets."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.http.signature import sign, signature_valid

BODY = b'{"event":"ORDER_OPENED","data":{"id":"ord_1"},"message_id":"m1","triggered_at":1}'
SECRETS = (b"old", b"new")


def test_sign_matches_the_documented_node_sample() -> None:
    # createHmac('sha256', secret).update(rawBody, 'utf8').digest('hex')
    assert sign(BODY, b"whsec") == hmac.new(b"whsec", BODY, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("secret", SECRETS)
def test_each_rotation_secret_is_accepted(secret: bytes) -> None:
    assert signature_valid(sign(BODY, secret), BODY, SECRETS)


def test_uppercase_and_padded_hex_are_the_same_signature() -> None:
    assert signature_valid(f"  {sign(BODY, b'new').upper()} ", BODY, SECRETS)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        " ",
        "z" * 64,
        sign(BODY, b"other"),
        sign(BODY + b" ", b"new"),
        sign(BODY, b"new")[:-1],
        sign(BODY, b"new") + "0",
        "a" * 100_000,
        "\x00" * 64,
        "é" * 64,
        "sha256=" + sign(BODY, b"new"),
    ],
)
def test_malformed_or_wrong_headers_are_invalid_not_errors(header: str | None) -> None:
    assert not signature_valid(header, BODY, SECRETS)


def test_no_secrets_accepts_nothing() -> None:
    assert not signature_valid(sign(BODY, b"new"), BODY, ())


@given(st.text(max_size=200))
def test_any_header_text_is_answered_without_raising(header: str) -> None:
    assert signature_valid(header, BODY, SECRETS) is False


@given(st.binary(min_size=1, max_size=300), st.integers(0, 10_000), st.integers(0, 7))
def test_any_single_bit_flip_of_the_body_is_refused(body: bytes, pos: int, bit: int) -> None:
    flipped = bytearray(body)
    flipped[pos % len(flipped)] ^= 1 << bit
    assert signature_valid(sign(body, b"new"), body, SECRETS)
    assert not signature_valid(sign(body, b"new"), bytes(flipped), SECRETS)
