"""The figures of a chaos run, printed for people and returned as a dict for docs."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from tests.chaos.harness import Result
from tests.chaos.state import parse_logs


def recovery_times(result: Result) -> dict[str, list[float]]:
    """Per fault kind: seconds from the fault's end to the next outbound event."""
    arrivals = sorted(m.at for m in result.observed.out.messages)
    times: dict[str, list[float]] = {}
    for fault in result.injector.faults:
        if fault.kind in ("api_faults", "api_modes"):  # switches, not outages
            continue
        after = next((a for a in arrivals if a >= fault.end), None)
        if after is not None:
            times.setdefault(fault.kind, []).append(after - fault.end)
    return times


def fault_log(result: Result) -> list[str]:
    """Every fault as `+seconds kind: detail`, relative to the start of the fault window."""
    faults = result.injector.faults
    t0 = min(f.start for f in faults)
    return [
        f"+{f.start - t0:.1f}s {f.kind}: {f.detail}" for f in sorted(faults, key=lambda f: f.start)
    ]


def figures(result: Result) -> dict[str, Any]:
    o, plan = result.observed, result.plan
    invoices = len(o.ledger.invoices)
    mutations = result.calls.get("mutation", {})
    api_calls = sum(n for op in result.calls.values() for n in op.values())
    api_faults = sum(
        n
        for op in result.calls.values()
        for kind, n in op.items()
        if kind not in ("ok", "not_found", "validation_error")
    )
    created = o.out.of("invoice.created")
    docs = parse_logs(o.log_lines)
    outcomes = Counter(f"{d.get('stage')} {d.get('outcome')}" for d in docs if d.get("outcome"))
    recoveries = recovery_times(result)
    return {
        "tier": result.tier.name,
        "seed": result.tier.seed,
        "broker_faults": result.broker_mode,
        "processes": result.tier.processes,
        "orders": len(plan.orders),
        "orders_two_part": len(plan.two_part),
        "orders_returned": len(plan.returned),
        "events_planned": dict(plan.counts),
        "events_confirmed": dict(Counter(s.kind for s in o.sent)),
        "publish_retries": result.driver.publish_retries,
        "returns_skipped_not_invoiced_in_120s": result.driver.returns_skipped,
        "faults": dict(Counter(f.kind for f in result.injector.faults)),
        "crash_points_fired": sorted(
            f.detail.split(": ")[1].split(" ")[0]
            for f in result.injector.faults
            if f.kind == "crash_point"
        ),
        "crash_points_unfired": result.injector.unfired,
        "fault_errors": result.injector.errors,
        "fault_log": fault_log(result),
        "process_lives": len(result.fleet.lives),
        "api_calls": api_calls,
        "api_faults_served": api_faults,
        "calls": result.calls,
        "invoices": invoices,
        "credit_invoices": sum(1 for i in o.ledger.invoices if i.total < 0),
        "mutation_calls": sum(mutations.values()),
        "mutation_calls_per_invoice": round(sum(mutations.values()) / invoices, 2)
        if invoices
        else 0.0,
        "invoice_created_messages": len(created),
        "duplicate_invoice_created": len(created) - len({m.body["invoice"]["id"] for m in created}),
        "pdf_ready_messages": len(o.out.of("invoice.pdf_ready")),
        "dead_letters": dict(Counter(m.reason for m in o.dead.messages)),
        "deliveries": dict(sorted(outcomes.items())),
        "recovery_s": {
            k: {"max": round(max(v), 1), "median": round(statistics.median(v), 1), "n": len(v)}
            for k, v in recoveries.items()
        },
        "last_event_after_last_fault_s": round(o.recovery_s, 1),
        "rss_growth_mb": round(o.rss_growth_mb, 1),
        "lost": len(o.lost_ids()),
        "double_invoiced": len(o.ledger.invoiced_more_than_once()),
        "service_logs": result.logs_path,
        "durations_s": {k: round(v, 1) for k, v in result.durations.items()},
    }


def render(result: Result) -> str:
    f = figures(result)
    lines = [f"== chaos {f['tier']} (seed {f['seed']}, broker faults: {f['broker_faults']})"]
    for key, value in f.items():
        if key not in ("tier", "seed", "broker_faults"):
            lines.append(f"  {key}: {value}")
    for check in result.checks:
        lines.append(
            f"{'PASS' if check.ok else 'FAIL'} {check.number}. {check.name}: {check.detail}"
        )
    passed = sum(c.ok for c in result.checks)
    lines.append(f"{passed} passed, {len(result.checks) - passed} failed")
    return "\n".join(lines)


def markdown(doc: dict[str, Any], command: str) -> str:
    """The results section of docs/reliability.md, from a run's JSON document."""
    f, checks = doc["figures"], doc["checks"]
    recovery = "; ".join(
        f"{k}: median {v['median']} s, max {v['max']} s (n={v['n']})"
        for k, v in sorted(f["recovery_s"].items())
    )

    def joined(table: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(table.items()))

    lives, calls = f["process_lives"], f["mutation_calls"]
    rows = [
        ("command", f"`{command}`"),
        ("broker faults", f["broker_faults"]),
        ("orders / processes", f"{f['orders']} / {f['processes']} ({lives} process lives)"),
        ("confirmed source events", joined(f["events_confirmed"])),
        ("faults injected", joined(f["faults"])),
        ("crash points reached", ", ".join(sorted(set(f["crash_points_fired"])))
         + f" ({len(f['crash_points_fired'])} crashes)"),
        ("Afosto calls / faults served", f"{f['api_calls']} / {f['api_faults_served']}"),
        ("invoices (credit)", f"{f['invoices']} ({f['credit_invoices']})"),
        ("mutation calls per invoice", f"{f['mutation_calls_per_invoice']} ({calls} calls)"),
        ("duplicate `invoice.created` deliveries", str(f["duplicate_invoice_created"])),
        ("dead letters by reason", joined(f["dead_letters"])),
        ("recovery after each fault", recovery),
        ("last event after the last fault", f"{f['last_event_after_last_fault_s']} s"),
        ("RSS growth (largest, one process)", f"{f['rss_growth_mb']} MB"),
        ("lost", str(f["lost"])),
        ("double-invoiced", str(f["double_invoiced"])),
        ("wall time", f"{f['durations_s']['total']} s"),
    ]  # fmt: skip
    lines = [f"### {f['tier']}, seed {f['seed']}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "```"]
    lines += [
        f"{'PASS' if c['ok'] else 'FAIL'} {c['number']}. {c['name']}: {c['detail']}" for c in checks
    ]
    passed = sum(1 for c in checks if c["ok"])
    lines += [f"{passed} passed, {len(checks) - passed} failed", "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m tests.chaos.report run.json "command" > section.md
    import json
    import sys

    with open(sys.argv[1]) as fh:
        print(markdown(json.load(fh), sys.argv[2] if len(sys.argv) > 2 else "?"))
