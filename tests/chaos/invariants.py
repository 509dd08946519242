"""The nine invariants of issue 6, each a pure function of what the run observed."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from tests.chaos.observe import Seen
from tests.chaos.payloads import event_view, ledger_view
from tests.chaos.state import Observed

WEBHOOK_OK = {200, 202}
DOWN_SLACK_S = 10.0  # a 503 may trail the broker's return while the publisher reconnects


@dataclass(frozen=True)
class Check:
    number: int
    name: str
    ok: bool
    detail: str


def _short(items: Any, n: int = 3) -> str:
    text = json.dumps(items, default=str)
    return text if len(text) < 300 else text[:300] + "…"


def _verdict(
    number: int, name: str, detail: str, problems: list[str], shown: str | None = None
) -> Check:
    """The check fails on any problem; the detail then ends with them (or with `shown`)."""
    if problems:
        detail += f"; {_short(problems) if shown is None else shown}"
    return Check(number, name, not problems, detail)


def exactly_once(o: Observed) -> Check:
    twice, never = o.ledger.invoiced_more_than_once(), o.ledger.never_invoiced()
    ok = not twice and not never
    missing = sum(len(v) for v in never.values())
    detail = (
        f"{len(o.ledger.item_invoices)} items on {len(o.ledger.invoices)} invoices; "
        f"double-invoiced {len(twice)}, never invoiced {missing}"
    )
    if not ok:
        detail += f": {_short(twice or never)}"
    return Check(1, "every invoiceable item invoiced exactly once", ok, detail)


def created_events(o: Observed) -> Check:
    by_invoice: dict[str, list[Seen]] = defaultdict(list)
    for m in o.out.of("invoice.created"):
        by_invoice[str((m.body.get("invoice") or {}).get("id"))].append(m)
    ledger = {i.id: i for i in o.ledger.invoices}
    problems = [f"no invoice.created for {i}" for i in ledger if i not in by_invoice]
    problems += [f"invoice.created for unknown invoice {i}" for i in by_invoice if i not in ledger]
    owners: dict[str, str] = {}
    for invoice_id, messages in by_invoice.items():
        ids = {m.body.get("event_id") for m in messages} | {m.message_id for m in messages}
        if len(ids) != 1:
            problems.append(f"{invoice_id}: event ids {sorted(map(str, ids))}")
        for event_id in ids:
            if owners.setdefault(str(event_id), invoice_id) != invoice_id:
                problems.append(f"event id {event_id} on two invoices")
        if invoice_id in ledger:
            expected = ledger_view(ledger[invoice_id])
            for m in messages:
                if event_view(m.body["invoice"]) != expected:
                    problems.append(f"{invoice_id}: payload differs from the ledger")
                    break
    copies = sum(len(v) for v in by_invoice.values())
    extra = copies - len(by_invoice)
    detail = f"{len(by_invoice)} invoices, {copies} invoice.created ({extra} duplicate deliveries)"
    return _verdict(2, "one event_id per invoice, payload equals the ledger", detail, problems)


def pdf_events(o: Observed) -> Check:
    first_created: dict[str, int] = {}
    first_ready: dict[str, int] = {}
    urls: dict[str, set[str]] = defaultdict(set)
    for index, m in enumerate(o.out.messages):
        if m.routing_key == "invoice.created":
            first_created.setdefault(str(m.body["invoice"]["id"]), index)
        elif m.routing_key == "invoice.pdf_ready":
            invoice_id = str(m.body.get("invoice_id"))
            first_ready.setdefault(invoice_id, index)
            urls[invoice_id].add(str(m.body.get("pdf_url")))
    timed_out = o.pdf_timeouts()
    problems = []
    for invoice in o.ledger.invoices:
        if invoice.id in timed_out:
            continue
        url = f"{o.base_url}/pdf/{invoice.id}.pdf"
        if invoice.id not in first_ready:
            problems.append(f"no pdf_ready for {invoice.id}")
        elif urls[invoice.id] != {url}:
            problems.append(f"{invoice.id}: pdf_url {sorted(urls[invoice.id])} != {url}")
        elif first_ready[invoice.id] < first_created.get(invoice.id, 1 << 60):
            problems.append(f"{invoice.id}: pdf_ready before invoice.created")
    ready = len(o.out.of("invoice.pdf_ready"))
    detail = f"{len(first_ready)} invoices with pdf_ready ({ready} messages), "
    detail += f"{len(timed_out)} pdf_timeout"
    return _verdict(3, "pdf_ready with the ledger URL, after invoice.created", detail, problems)


def nothing_lost(o: Observed) -> Check:
    lost = o.lost_ids()
    distinct = len({s.message_id for s in o.sent})
    detail = f"{len(o.sent)} confirmed source events ({distinct} distinct ids), lost {len(lost)}"
    if unlogged := o.unlogged_ids():
        detail += f" ({len(unlogged)} without a log line, their order queried afterwards: "
        detail += f"{_short(unlogged)})"
    return Check(
        4,
        "nothing lost: every confirmed event processed or dead-lettered",
        not lost,
        detail + (f": {_short(lost)}" if lost else ""),
    )


def drained(o: Observed) -> Check:
    live = o.live_processes
    problems = [
        f"{q}: {n} messages"
        for q, (n, _) in sorted(o.queues.items())
        if n and q != o.dead_queue and q != o.capture_queue
    ]
    problems += [
        f"{q}: {o.queues.get(q, (0, 0))[1]} consumers, {live} processes"
        for q in o.stage_queues
        if o.queues.get(q, (0, 0))[1] != live
    ]
    detail = f"{len(o.queues)} queues inspected, {live} live processes"
    return _verdict(
        5, "work, wait and intent queues drained; consumers = live processes", detail, problems
    )


def dead_letters(o: Observed) -> Check:
    expected = {s.message_id: s.reason for s in o.sent if s.kind == "poison"}
    got: dict[str, set[str]] = defaultdict(set)
    for m in o.dead.messages:
        if m.reason != "pdf_timeout":
            got[str(m.message_id)].add(m.reason)
    problems = [
        f"{i}: expected {r}, got {sorted(got.get(i, set())) or 'nothing'}"
        for i, r in expected.items()
        if got.get(i) != {r}
    ]
    problems += [
        f"unexpected dead letter {i} ({sorted(r)})" for i, r in got.items() if i not in expected
    ]
    never = {i.id for i in o.ledger.invoices if i.pdf_ready_at is None}
    timed_out = o.pdf_timeouts()
    if timed_out != never:
        problems.append(f"pdf_timeout for {sorted(timed_out)}, PDFs never made for {sorted(never)}")
    reasons = Counter(m.reason for m in o.dead.messages)
    detail = f"{len(o.dead.messages)} dead letters {dict(sorted(reasons.items()))}"
    return _verdict(
        6, "dead letters are exactly the injected poison, each with its reason", detail, problems
    )


def webhooks(o: Observed) -> Check:
    problems = [
        f"attack {a.name!r}: {a.status}, expected {a.expected}"
        for a in o.attack_answers
        if a.status != a.expected
    ]
    if len(o.attack_answers) != o.attacks_planned:
        problems.append(f"{len(o.attack_answers)} of {o.attacks_planned} attacks answered")
    for a in o.answers:
        if a.status in WEBHOOK_OK:
            continue
        if a.status == 503 and o.broker_down_near(a.at, DOWN_SLACK_S):
            continue
        problems.append(f"webhook {a.name}: {a.status}")
    statuses = Counter(a.status for a in o.answers)
    detail = f"{len(o.attack_answers)} attacks answered; valid deliveries answered "
    detail += str(dict(sorted(statuses.items())))
    return _verdict(
        7, "webhook statuses as specified; 5xx only 503 while the broker is down", detail, problems
    )


def no_secrets(o: Observed) -> Check:
    leaks: Counter[str] = Counter()
    texts = (
        [("log", line) for line in o.log_lines]
        + [("event", m.text()) for m in o.out.messages]
        + [("dead letter", m.text()) for m in o.dead.messages]
    )
    for where, text in texts:
        for name, canary in o.canaries.items():
            if canary in text:
                leaks[f"{name} in a {where}"] += 1
    detail = (
        f"{len(o.log_lines)} log lines, {len(o.out.messages)} events, "
        f"{len(o.dead.messages)} dead letters searched for {len(o.canaries)} canaries"
    )
    name = "no secret in any log line, event or dead letter"
    return _verdict(8, name, detail, list(leaks), shown=f"leaks {dict(leaks)}")


def recovery(o: Observed) -> Check:
    problems = []
    if o.recovery_s > o.recovery_limit_s:
        problems.append(
            f"last event {o.recovery_s:.1f}s after the last fault (limit {o.recovery_limit_s:.0f}s)"
        )
    if not o.quiesced:
        problems.append("the pipeline never became quiet")
    if o.rss_growth_mb > o.rss_limit_mb:
        problems.append(f"RSS grew {o.rss_growth_mb:.1f} MB (limit {o.rss_limit_mb:.0f} MB)")
    detail = (
        f"last event {o.recovery_s:.1f}s after the last fault; RSS growth {o.rss_growth_mb:.1f} MB"
    )
    name = "recovered within 120 s of the last fault; RSS growth under 50 MB"
    return _verdict(9, name, detail, problems, shown="; ".join(problems))


def faults_injected(o: Observed) -> Check:
    """Not an invariant of the service but of the run: the faults it claims really happened."""
    problems = o.fault_errors + [f"crash point {p} never reached" for p in o.unfired]
    detail = "; ".join(problems) or "every scheduled fault injected, every crash point reached"
    return Check(0, "faults injected as scheduled", not problems, detail)


ALL = (
    faults_injected,
    exactly_once,
    created_events,
    pdf_events,
    nothing_lost,
    drained,
    dead_letters,
    webhooks,
    no_secrets,
    recovery,
)


def check_all(o: Observed) -> list[Check]:
    return [check(o) for check in ALL]
