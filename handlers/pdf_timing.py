"""When to look first at a new invoice's PDF: learnt from the checks this process made.

Afosto renders a PDF some time after the invoice is created and says only "not yet" or "here".
Each look is recorded with the age it was scheduled for (due_at - seen_at, on our clock; it
lands a little later, more so in a backlog, which only helps). A look scheduled at `a` that
found the PDF says "a look at any t >= a would have found it"; one that did not says "a look at
any t <= a would not have". For a candidate first-check age `t` (a wait tier) those two counts
are the evidence, and `found / (found + missed)` estimates the chance a look at `t` finds it.
The first check goes to the smallest candidate whose estimate reaches the quantile: one Afosto
call per PDF most of the time, without waiting longer than needed. Scheduled rather than
measured ages keep queueing lag out of it: measured ages would push the choice ever later.

Checks only ever land on chosen candidates, so nothing would be learnt below the current
choice; every `explore_every`-th invoice therefore goes one candidate lower while that
candidate lacks evidence, which lets the choice come down again when PDFs get faster. Upwards,
the first unproven candidate above one proven too early is tried next.

Only first looks may report a miss (poll_pdf decides): later looks happen only for slow or
missing PDFs, and a PDF that never appears would add a miss per look until its deadline,
drowning the window and pushing every first look late.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import timedelta
from typing import Final

DEFAULT_FIRST_CHECK: Final = timedelta(seconds=1)  # before anything was observed
DEFAULT_CANDIDATES: Final = tuple(timedelta(seconds=s) for s in (1, 2, 5, 10, 30))
QUANTILE: Final = 0.9
WINDOW: Final = 256  # recent checks only: rendering times drift with Afosto's load
MIN_EVIDENCE: Final = 20
EXPLORE_EVERY: Final = 8
MAX_FIRST_CHECK: Final = timedelta(seconds=30)


class PdfDelayEstimator:
    """Per-process estimate of the invoice-creation → pdf_url delay; see the module docstring."""

    def __init__(
        self,
        candidates: Sequence[timedelta] = DEFAULT_CANDIDATES,
        *,
        default: timedelta = DEFAULT_FIRST_CHECK,
        quantile: float = QUANTILE,
        window: int = WINDOW,
        min_evidence: int = MIN_EVIDENCE,
        explore_every: int = EXPLORE_EVERY,
        cap: timedelta = MAX_FIRST_CHECK,
    ) -> None:
        kept = sorted({c.total_seconds() for c in candidates if timedelta(0) < c <= cap})
        self._candidates = kept or [min(default, cap).total_seconds()]
        self._default = min(default, cap)
        self._quantile = quantile
        self._min_evidence = min_evidence
        self._explore_every = max(explore_every, 1)
        self._checks: deque[tuple[float, bool]] = deque(maxlen=window)
        self._choice: tuple[int, bool] | None = None  # (candidate index, lower one unproven)
        self._fresh = 0  # observations since the choice was computed
        self._issued = 0

    def observe(self, age: timedelta, ready: bool) -> None:
        """Record one look scheduled `age` after issue saw the invoice; `ready`: PDF was there."""
        self._checks.append((max(age.total_seconds(), 0.0), ready))
        self._fresh += 1

    def first_check(self) -> timedelta:
        """How long after creation to look at a new invoice's PDF first."""
        # Recomputed every few observations: the choice moves slowly and this runs per invoice.
        if self._choice is None or self._fresh >= 8:
            self._choice = self._choose()
            self._fresh = 0
        index, lower_unproven = self._choice
        if index < 0:
            return self._default
        self._issued += 1
        if lower_unproven and index > 0 and self._issued % self._explore_every == 0:
            index -= 1
        return timedelta(seconds=self._candidates[index])

    def evidence(self, age: timedelta) -> tuple[int, int]:
        """(looks that say one at `age` would find the PDF, looks that say it would not)."""
        t = age.total_seconds()
        found = sum(1 for a, ready in self._checks if ready and a <= t)
        missed = sum(1 for a, ready in self._checks if not ready and a >= t)
        return found, missed

    def _choose(self) -> tuple[int, bool]:
        """Index of the smallest candidate whose evidence reaches the quantile, and whether the
        one below it lacks evidence; (-1, False) while too little was seen."""
        chosen, failing = -1, False
        for index, t in enumerate(self._candidates):
            found, missed = self.evidence(timedelta(seconds=t))
            seen = found + missed
            if seen >= self._min_evidence:
                if found >= self._quantile * seen:
                    chosen = index
                    break
                failing = True  # proven too early
            elif failing:
                chosen = index  # unproven, above one proven too early: try it
                break
        else:
            if failing:  # slower than every candidate: look as late as allowed
                chosen = len(self._candidates) - 1
        if chosen <= 0:
            return chosen, False
        below = sum(self.evidence(timedelta(seconds=self._candidates[chosen - 1])))
        return chosen, below < self._min_evidence
