"""PDFs: Dutch amounts, a real document that parses, and the pdf_url delay and faults."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import pytest
from pypdf import PdfReader

import sandbox
from sandbox import Store
from sandbox.money import format_eur
from sandbox.pdf import render
from tests.sandbox.helpers import gql, invoice_ids_of, simple_order, unit_ids
from tests.sandbox.operations import INVOICE_QUERY


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (2499, "€ 24,99"),
        (5, "€ 0,05"),
        (0, "€ 0,00"),
        (123456, "€ 1.234,56"),
        (123456789, "€ 1.234.567,89"),
        (-2499, "€ -24,99"),
        (-100000, "€ -1.000,00"),
    ],
)
def test_dutch_amounts(cents: int, text: str) -> None:
    assert format_eur(cents) == text


def pdf_text(document: bytes) -> str:
    reader = PdfReader(io.BytesIO(document))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_invoice_pdf_reads_back() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    text = pdf_text(render(store.invoice_items(unit_ids(order))))
    assert "INV-000001" in text
    assert "FACTUUR" in text
    assert "CREDITFACTUUR" not in text
    assert "€ 50,97" in text  # total incl. VAT
    assert "€ 44,48" in text  # excl. VAT
    assert "Jan Jansen" in text
    assert order.number in text


def test_credit_invoice_pdf_is_marked() -> None:
    store = Store()
    order = simple_order(store, policy="ON_OPEN")
    store.invoice_items(unit_ids(order))
    store.cancel(order.id, unit_ids(order)[2:])
    store.approve(order.id)
    text = pdf_text(render(store.invoice_items(invoice_ids_of(order))))
    assert "CREDITFACTUUR" in text
    assert "€ -24,99" in text


async def test_pdf_url_appears_after_the_delay_and_serves_a_pdf() -> None:
    faults = {"pdf_delay_min_s": 0.8, "pdf_delay_max_s": 0.8}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        order = simple_order(sb.store, policy="ON_OPEN")
        invoice = sb.store.invoice_items(unit_ids(order))
        first = await gql(session, sb, INVOICE_QUERY, {"id": invoice.id})
        assert first["data"]["invoice"]["pdf_url"] is None
        async with session.get(f"{sb.base_url}/pdf/{invoice.id}.pdf") as early:
            assert early.status == 404
        await asyncio.sleep(0.85)
        later = await gql(session, sb, INVOICE_QUERY, {"id": invoice.id})
        url = later["data"]["invoice"]["pdf_url"]
        assert url == f"{sb.base_url}/pdf/{invoice.id}.pdf"
        async with session.get(url) as response:
            assert response.status == 200
            assert response.content_type == "application/pdf"
            assert invoice.number in response.headers["Content-Disposition"]
            assert invoice.number in pdf_text(await response.read())


async def test_pdf_that_never_appears() -> None:
    faults = {"pdf_never_rate": 1.0, "pdf_delay_min_s": 0.0, "pdf_delay_max_s": 0.0}
    async with sandbox.running(faults=faults) as sb, aiohttp.ClientSession() as session:
        order = simple_order(sb.store, policy="ON_OPEN")
        invoice = sb.store.invoice_items(unit_ids(order))
        await asyncio.sleep(0.05)
        body = await gql(session, sb, INVOICE_QUERY, {"id": invoice.id})
        assert body["data"]["invoice"]["pdf_url"] is None
        async with session.get(f"{sb.base_url}/pdf/{invoice.id}.pdf") as response:
            assert response.status == 404


def test_default_pdf_delays_are_seeded_and_within_bounds() -> None:
    delays = [sandbox.FaultController(seed=7).pdf_delay() for _ in range(2)]
    controller = sandbox.FaultController(seed=7)
    many = [controller.pdf_delay() for _ in range(200)]
    assert delays[0] == delays[1] == many[0]
    assert all(d is not None and 0.2 <= d <= 2.0 for d in many)
