"""VAT and rounding properties (hypothesis)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import LineSpec, Store
from sandbox.money import excluding_vat, round_half_away_from_zero, vat_of
from tests.sandbox.helpers import consumer, invoice_ids_of, unit_ids

rates = st.sampled_from([0, 9, 21])
cents = st.integers(min_value=-(10**9), max_value=10**9)
lines = st.lists(
    st.tuples(st.integers(1, 500_000), st.integers(1, 3), rates), min_size=1, max_size=6
)


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**4))
def test_rounding_matches_decimal_half_away_from_zero(numerator: int, denominator: int) -> None:
    expected = (Decimal(numerator) / Decimal(denominator)).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    assert round_half_away_from_zero(numerator, denominator) == int(expected)


@given(cents, rates)
def test_vat_plus_ex_vat_is_the_total(total: int, rate: int) -> None:
    assert vat_of(total, rate) + excluding_vat(total, rate) == total


@given(cents, rates)
def test_ex_vat_is_the_nearest_cent(total: int, rate: int) -> None:
    exact_times_denominator = total * 100
    assert (
        abs(excluding_vat(total, rate) * (100 + rate) - exact_times_denominator) * 2 <= 100 + rate
    )


@given(cents, rates)
def test_vat_is_symmetric_for_credits(total: int, rate: int) -> None:
    assert vat_of(-total, rate) == -vat_of(total, rate)


@settings(max_examples=60, deadline=None)
@given(lines)
def test_invoice_sums_and_exact_credit(specs: list[tuple[int, int, int]]) -> None:
    store = Store()
    order = store.create_order(
        consumer(store),
        [LineSpec(f"SKU{i}", f"Product {i}", p, q, r) for i, (p, q, r) in enumerate(specs)],
    )
    store.ship(order.id)
    invoice = store.invoice_items(unit_ids(order))
    for line in invoice.lines:
        assert line.vat.amount + line.total_ex_vat == line.total
        assert line.total == line.unit_price * line.quantity
    assert sum(v.amount for v in invoice.vat) == sum(line.vat.amount for line in invoice.lines)
    for vat in invoice.vat:
        assert vat.amount == sum(x.vat.amount for x in invoice.lines if x.vat.rate == vat.rate)
    assert invoice.total == invoice.subtotal == sum(line.total for line in invoice.lines)
    assert invoice.total_ex_vat + sum(v.amount for v in invoice.vat) == invoice.total
    store.return_units(order.id)
    store.approve(order.id)
    credit = store.invoice_items(invoice_ids_of(order))
    assert credit.total == -invoice.total
    assert credit.total_ex_vat == -invoice.total_ex_vat
    assert [(v.rate, -v.amount) for v in credit.vat] == [(v.rate, v.amount) for v in invoice.vat]
    pairs = zip(invoice.lines, credit.lines, strict=True)
    for original, contra in pairs:
        assert contra.is_contra
        assert (contra.sku, contra.quantity) == (original.sku, original.quantity)
        assert (contra.total, contra.vat.amount) == (-original.total, -original.vat.amount)
