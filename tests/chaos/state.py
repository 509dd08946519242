"""Everything a chaos run observed, in one place for the invariants and the report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sandbox.ledger import Ledger
from tests.chaos.driver import Answer, Sent
from tests.chaos.observe import Tap


@dataclass
class Observed:
    ledger: Ledger
    base_url: str
    out: Tap
    dead: Tap
    sent: list[Sent]
    answers: list[Answer]
    attack_answers: list[Answer]
    attacks_planned: int
    log_lines: list[str]
    queues: dict[str, tuple[int, int]]
    stage_queues: list[str]
    dead_queue: str
    capture_queue: str
    live_processes: int
    canaries: dict[str, str]
    recovery_s: float
    quiesced: bool
    rss_growth_mb: float
    down_windows: list[tuple[float, float]] = field(default_factory=list)
    order_queries: dict[str, list[float]] = field(default_factory=dict)
    fault_errors: list[str] = field(default_factory=list)
    unfired: list[str] = field(default_factory=list)
    recovery_limit_s: float = 120.0
    rss_limit_mb: float = 50.0

    def pdf_timeouts(self) -> set[str]:
        return {
            str(m.body.get("invoice_id")) for m in self.dead.messages if m.reason == "pdf_timeout"
        }

    def acked_triggers(self) -> set[str]:
        """Message ids the services logged as `triggers acked` (JSON log lines)."""
        return {
            str(doc.get("message_id"))
            for doc in parse_logs(self.log_lines)
            if doc.get("stage") == "triggers" and doc.get("outcome") == "acked"
        }

    def lost_ids(self) -> list[str]:
        """Confirmed source events with no evidence of processing: no `triggers acked` log line,
        no dead letter, and no query of their order after the broker confirmed them."""
        done = self.acked_triggers() | {str(m.message_id) for m in self.dead.messages}
        return sorted(
            {s.message_id for s in self.sent if s.message_id not in done and not self.covered(s)}
        )

    def covered(self, sent: Sent) -> bool:
        """The service examined the event's order after the event was confirmed (a process
        killed between ack and log line leaves only this trace)."""
        return any(t >= sent.begun for t in self.order_queries.get(sent.order_id, ()))

    def unlogged_ids(self) -> list[str]:
        """Events without a log line or dead letter, accepted on a later order query alone."""
        done = self.acked_triggers() | {str(m.message_id) for m in self.dead.messages}
        return sorted(
            {s.message_id for s in self.sent if s.message_id not in done and self.covered(s)}
        )

    def broker_down_near(self, at: float, slack: float) -> bool:
        return any(start - 1.0 <= at <= end + slack for start, end in self.down_windows)


def parse_logs(lines: list[str]) -> list[dict[str, object]]:
    docs = []
    for line in lines:
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                docs.append(doc)
    return docs
