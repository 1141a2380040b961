"""Which candidate ships, the nearest miss when none fits, the headroom, and the Pareto fronts.

One place decides each of these rules:

- **ships**: among the candidates that pass every check (every budget, the
  accuracy tolerance, the target's rules), the one with the least accuracy
  damage; ``prefer`` a budget instead (``ram``, ``flash``, ``latency``,
  ``energy``) to ship the smallest or fastest one within the tolerance.
  Ties go to the lower total budget use, then to the earlier candidate;
- **nearest miss**: when nothing passes, the candidate whose misses add up
  to the least (each budget's overshoot as a fraction of it, the damage
  over the tolerance, one per other failed check);
- **headroom**: for the candidate that ships, how much of each budget is left;
  and, per budget, the **leanest** candidate within the tolerance (the
  smallest or fastest one that passes every check), so a model that already
  fits learns how far it could shrink;
- **Pareto front**: candidates no other candidate beats on damage and on
  every budget at once (and, per budget, on damage and that budget alone,
  which is what each panel of the plot shows).
"""

from __future__ import annotations

from edgepipe.fit.score import UNBOUNDED, Score
from edgepipe.fit.trial import TrialRecord

PREFERENCES = ("accuracy", "ram", "flash", "latency", "energy")


def scored(records: list[TrialRecord]) -> list[TrialRecord]:
    """Candidates that built, one per distinct choice (a repeated proposal counts once)."""
    return [r for r in records if r.score is not None and "same_as" not in r.extra]


def damage_of(score: Score) -> float:
    return UNBOUNDED if score.damage is None else score.damage


def choose(records: list[TrialRecord], prefer: str = "accuracy") -> TrialRecord | None:
    """The candidate that ships (None when none passes every check)."""
    feasible = [r for r in scored(records) if r.score.feasible]
    if not feasible:
        return None
    if prefer == "accuracy":
        return min(feasible, key=lambda r: (damage_of(r.score), _total_use(r.score), r.number))
    return min(feasible, key=lambda r: (_use(r.score, prefer), damage_of(r.score), r.number))


def nearest_miss(records: list[TrialRecord]) -> TrialRecord | None:
    candidates = scored(records)
    if not candidates:
        return None
    return min(candidates, key=lambda r: (r.score.excess(), damage_of(r.score), r.number))


def headroom(score: Score) -> list[dict]:
    """Each budget: used, budget, and the share left (negative: over)."""
    return [{"check": b.name, "measured": b.measured, "budget": b.budget, "unit": b.unit,
             "left_percent": round(100.0 * (1.0 - b.ratio), 2)} for b in score.budgets]


def leanest(records: list[TrialRecord]) -> dict[str, TrialRecord]:
    """Per budget, the candidate passing every check that uses least of it."""
    feasible = [r for r in scored(records) if r.score.feasible]
    names = [b.name for b in feasible[0].score.budgets] if feasible else []
    return {name: choose(feasible, name) for name in names}


def pareto(records: list[TrialRecord], budget: str | None = None) -> list[int]:
    """Numbers of the non-dominated candidates on (damage, every budget) or (damage, ``budget``)."""
    points = [(r.number, _point(r.score, budget)) for r in scored(records)]
    return [n for n, p in points if not any(_dominates(q, p) for m, q in points if m != n)]


def _point(score: Score, budget: str | None) -> tuple[float, ...]:
    names = [budget] if budget else [b.name for b in score.budgets]
    return (damage_of(score), *(_use(score, n) for n in names))


def _dominates(a: tuple, b: tuple) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _use(score: Score, name: str) -> float:
    value = score.use(name)
    return UNBOUNDED if value is None else value


def _total_use(score: Score) -> float:
    return sum(b.ratio for b in score.budgets)
