"""Renders an invoice as a real PDF (reportlab), amounts in Dutch notation."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from sandbox.invoices import Invoice
from sandbox.money import format_eur

SELLER = "Sandbox Webwinkel B.V. · Voorbeeldstraat 1 · 1011 AB Amsterdam · BTW NL000000000B01"
GRID = TableStyle(
    [
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
    ]
)


def _rate(rate: float) -> str:
    return f"{rate:g}%"


def title(invoice: Invoice) -> str:
    return "CREDITFACTUUR (Credit invoice)" if invoice.is_credit else "FACTUUR (Invoice)"


def render(invoice: Invoice) -> bytes:
    """The PDF bytes of `invoice`: header, customer, lines, VAT table and totals."""
    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=A4, title=f"{title(invoice)} {invoice.number}", author="afosto sandbox"
    )
    created = datetime.fromtimestamp(invoice.created_at / 1000, UTC).strftime("%d-%m-%Y")
    customer = invoice.customer
    who = [customer.organisation.name] if customer.organisation else []
    who.append(" ".join(filter(None, [customer.contact.given_name, customer.contact.family_name])))
    who.append(customer.contact.email)
    story: list[object] = [
        Paragraph(title(invoice), styles["Title"]),
        Paragraph(SELLER, styles["Normal"]),
        Spacer(1, 6 * mm),
        Paragraph(f"Factuurnummer: {invoice.number}", styles["Normal"]),
        Paragraph(f"Factuurdatum: {created}", styles["Normal"]),
        Paragraph(f"Orders: {', '.join(o.number for o in invoice.orders)}", styles["Normal"]),
        Spacer(1, 4 * mm),
        Paragraph("Klant: " + escape(" · ".join(filter(None, who))), styles["Normal"]),
        Spacer(1, 6 * mm),
    ]
    rows: list[list[object]] = [["Omschrijving", "Aantal", "Prijs", "BTW", "Totaal"]]
    for line in invoice.lines:
        label = f"{line.label} (creditering)" if line.is_contra else line.label
        rows.append(
            [
                Paragraph(escape(label), styles["BodyText"]),
                str(line.quantity),
                format_eur(line.unit_price),
                _rate(line.vat.rate),
                format_eur(line.total),
            ]
        )
    story += [Table(rows, colWidths=[80 * mm, 18 * mm, 25 * mm, 15 * mm, 28 * mm], style=GRID)]
    base: dict[float, int] = {}
    for line in invoice.lines:
        base[line.vat.rate] = base.get(line.vat.rate, 0) + line.total_ex_vat
    vat_rows = [["BTW-tarief", "Grondslag", "BTW"]]
    vat_rows += [
        [_rate(v.rate), format_eur(base[v.rate]), format_eur(v.amount)] for v in invoice.vat
    ]
    totals = [
        ["Totaal excl. BTW", format_eur(invoice.total_ex_vat)],
        ["BTW", format_eur(invoice.total - invoice.total_ex_vat)],
        ["Totaal incl. BTW", format_eur(invoice.total)],
    ]
    story += [
        Spacer(1, 6 * mm),
        Table(vat_rows, colWidths=[30 * mm, 30 * mm, 30 * mm], style=GRID, hAlign="LEFT"),
        Spacer(1, 6 * mm),
        Table(
            totals,
            colWidths=[40 * mm, 30 * mm],
            style=TableStyle([("ALIGN", (1, 0), (1, -1), "RIGHT")]),
            hAlign="RIGHT",
        ),
        Spacer(1, 6 * mm),
        Paragraph(f"Betaalstatus: {invoice.reimbursement.status}", styles["Normal"]),
    ]
    document.build(story)
    return buffer.getvalue()
