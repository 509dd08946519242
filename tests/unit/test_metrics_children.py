"""Metrics.child caches labelled series without mixing them up."""

from __future__ import annotations

from consumer.metrics import Metrics


def test_cached_children_count_into_the_right_series() -> None:
    m = Metrics()
    m.message_done("q.intents", "acked")
    m.message_done("q.intents", "acked")
    m.message_done("q.pdf", "acked")
    m.afosto_call("order", "ok", 0.01)
    m.invoice_created("credit", "EUR", -1210)
    assert m.child(m.messages, "q.intents", "acked") is m.messages.labels("q.intents", "acked")
    text = m.render().decode()
    assert 'invoicer_messages_total{outcome="acked",queue="q.intents"} 2.0' in text
    assert 'invoicer_messages_total{outcome="acked",queue="q.pdf"} 1.0' in text
    assert 'invoicer_afosto_calls_total{operation="order",outcome="ok"} 1.0' in text
    assert 'invoicer_invoiced_amount_cents_total{currency="EUR",kind="credit"} 1210.0' in text
