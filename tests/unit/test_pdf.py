"""Stage pdf: poll until pdf_url, growing delays, pdf_timeout at the deadline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handlers.errors import Permanent, Transient
from handlers.ids import event_id_for
from handlers.pdf import PDF_CAP, poll_pdf
from handlers.ports import Emit, Forward
from schemas.internal import PdfCheck
from schemas.outbound import PdfReady
from tests.unit.fakes import CTX, T0, FakeAfosto, make_deps


async def invoiced(api: FakeAfosto) -> PdfCheck:
    api.add_order("o1", ["a"])
    invoice = await api.invoice_items(["a"], "inv-1")
    return PdfCheck(
        invoice_id=invoice.id,
        invoice_number=invoice.number,
        correlation_id="ev-1",
        created_at=invoice.created_at,
        due_at=T0 + timedelta(seconds=1),
        check=1,
    )


async def test_pdf_ready_once_the_url_is_set() -> None:
    api = FakeAfosto(pdf_after=timedelta(seconds=0))
    check = await invoiced(api)
    (emit,) = await poll_pdf(check, make_deps(api), CTX)
    assert isinstance(emit, Emit)
    assert isinstance(emit.event, PdfReady)
    assert emit.event_type == "invoice.pdf_ready"
    assert emit.event_id == event_id_for("inv-1", "invoice.pdf_ready")
    assert emit.event.pdf_url == "https://pdf.test/inv-1.pdf"
    assert emit.event.invoice_number == check.invoice_number
    assert emit.event.occurred_at == check.due_at
    # a redelivered check publishes the very same bytes
    (again,) = await poll_pdf(check, make_deps(api), CTX)
    assert isinstance(again, Emit)
    assert again.event.model_dump_json() == emit.event.model_dump_json()


async def test_polls_with_growing_delays_until_the_pdf_appears() -> None:
    api = FakeAfosto(pdf_after=timedelta(seconds=40))
    check = await invoiced(api)
    deps = make_deps(api)
    api.clock.advance(timedelta(seconds=1))
    delays = []
    while True:
        (out,) = await poll_pdf(check, deps, CTX)
        if isinstance(out, Emit):
            break
        assert isinstance(out, Forward)
        assert isinstance(out.message, PdfCheck)
        assert out.stage == "pdf"
        assert out.delay is not None
        assert out.message_id == f"pdf:inv-1:{out.message.check}"
        delays.append(out.delay.total_seconds())
        api.clock.advance(out.delay)
        check = out.message
    assert delays == [2, 4, 8, 16, 32]
    assert api.clock.now() >= T0 + timedelta(seconds=40)


async def test_no_pdf_by_the_deadline_is_pdf_timeout() -> None:
    api = FakeAfosto(pdf_after=None)
    check = await invoiced(api)
    deps = make_deps(api, pdf_deadline=timedelta(minutes=5))
    while True:
        try:
            (out,) = await poll_pdf(check, deps, CTX)
        except Permanent as exc:
            error = exc
            break
        assert isinstance(out, Forward)
        assert isinstance(out.message, PdfCheck)
        assert out.delay is not None
        assert out.delay <= PDF_CAP
        assert api.clock.now() + out.delay <= T0 + timedelta(minutes=5)
        api.clock.advance(out.delay)
        check = out.message
    assert error.reason == "pdf_timeout"
    assert "inv-1" in error.detail
    assert api.clock.now() == T0 + timedelta(minutes=5)


async def test_missing_invoice_is_transient() -> None:
    api = FakeAfosto()
    check = PdfCheck(
        invoice_id="ghost",
        invoice_number="X",
        correlation_id="e",
        created_at=T0,
        due_at=T0,
        check=1,
    )
    with pytest.raises(Transient):
        await poll_pdf(check, make_deps(api), CTX)
