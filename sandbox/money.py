"""Integer-cent arithmetic: VAT from VAT-inclusive totals, and Dutch amount formatting."""

from __future__ import annotations


def round_half_away_from_zero(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves away from zero."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def excluding_vat(total: int, rate: int) -> int:
    """The VAT-exclusive part of a VAT-inclusive `total` at `rate` percent."""
    return round_half_away_from_zero(total * 100, 100 + rate)


def vat_of(total: int, rate: int) -> int:
    """VAT contained in a VAT-inclusive `total`: total − round(total·100/(100+rate))."""
    return total - excluding_vat(total, rate)


def format_eur(cents: int) -> str:
    """Dutch notation: `€ 1.234,56`, `€ -24,99`."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    grouped = f"{euros:,}".replace(",", ".")
    return f"€ {sign}{grouped},{rest:02d}"
