"""Afosto's webhook signature (afosto-api.md §2.5): lowercase hex HMAC-SHA256 of the raw body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

_DIGEST_HEX_LEN: Final = hashlib.sha256().digest_size * 2
_HEX: Final = frozenset("0123456789abcdef")


def sign(body: bytes, secret: bytes) -> str:
    """The header value Afosto sends for `body` signed with `secret` (its UTF-8 bytes)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_valid(header: str | None, body: bytes, secrets: Sequence[bytes]) -> bool:
    """True when `header` is the signature of `body` under any of `secrets` (malformed: False)."""
    # Every secret is tried, no early exit, so timing does not tell which one (if any) matched.
    if not header:
        return False
    candidate = header.strip().lower()
    if len(candidate) != _DIGEST_HEX_LEN or not _HEX.issuperset(candidate):
        return False
    given = bytes.fromhex(candidate)
    matched = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, given)
    return matched
