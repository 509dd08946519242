"""Deterministic ids and Money parsing, as properties."""

from __future__ import annotations

import random
import uuid

from hypothesis import given
from hypothesis import strategies as st

from handlers.ids import EVENT_NAMESPACE, INVOICE_NAMESPACE, event_id_for, invoice_id_for, uuid5
from schemas.afosto import VatAmount

# Commas and backslashes included: they must not let two item sets share an invoice id.
ITEM_IDS = st.lists(st.text(alphabet="ab,\\", min_size=1, max_size=6), min_size=1, max_size=4)


@given(ITEM_IDS, st.randoms())
def test_invoice_id_ignores_order_and_repeats(ids: list[str], rnd: random.Random) -> None:
    shuffled = list(ids) + list(ids[:1])
    rnd.shuffle(shuffled)
    assert invoice_id_for(shuffled) == invoice_id_for(ids)
    assert uuid.UUID(invoice_id_for(ids)).version == 5


@given(st.sampled_from([INVOICE_NAMESPACE, EVENT_NAMESPACE, uuid.NAMESPACE_URL]), st.text())
def test_the_fast_uuid5_is_the_standard_librarys(namespace: uuid.UUID, name: str) -> None:
    assert uuid5(namespace, name) == str(uuid.uuid5(namespace, name))


def test_ids_minted_before_stay_the_same() -> None:
    # Values from before uuid5 was inlined: a changed id would invoice a set a second time.
    assert invoice_id_for(["b", "a"]) == str(uuid.uuid5(INVOICE_NAMESPACE, "a,b"))
    assert event_id_for("inv-1", "invoice.created") == str(
        uuid.uuid5(EVENT_NAMESPACE, "invoice.created:inv-1")
    )


@given(ITEM_IDS, ITEM_IDS)
def test_different_item_sets_get_different_invoice_ids(a: list[str], b: list[str]) -> None:
    assert (invoice_id_for(a) == invoice_id_for(b)) == (set(a) == set(b))


def test_event_ids_differ_per_event_type_and_are_stable() -> None:
    created = event_id_for("inv-1", "invoice.created")
    assert created == event_id_for("inv-1", "invoice.created")
    assert created != event_id_for("inv-1", "invoice.pdf_ready")
    assert created != event_id_for("inv-2", "invoice.created")
    # pinned: changing a namespace would re-number every published event
    assert invoice_id_for(["a", "b"]) == "187f7e0a-73ae-576b-94cb-acec04d0e137"
    assert invoice_id_for(["a,b"]) != invoice_id_for(["a", "b"])
    assert invoice_id_for(["a\\", "b"]) != invoice_id_for(["a\\,b"])


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_money_reads_the_same_cents_from_int_float_and_string(cents: int) -> None:
    for raw in (cents, float(cents), str(cents), f" {cents} "):
        assert VatAmount.model_validate({"rate": 21, "amount": raw}).amount == cents
