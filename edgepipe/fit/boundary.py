"""Candidates at the budgets' edge: per metric, the least pruning predicted to meet every budget.

Accuracy damage grows as more is pruned, so the candidate that ships is
usually the one that *just* fits. A sampler over a few dozen candidates
finds that edge only by luck: on the mini-Xception, TPE alone shipped
"keep 50 % of latency" with 30 % of the latency budget unused, 0.8 points
of agreement below a uniform grid whose best candidate used 98 % of it.
NetAdapt's answer is to measure and then choose the least reduction that
meets the budget; this module does that per ``metric``, from what the fit
has measured so far:

- the model as it is counts as ``keep`` 1.0 for every metric;
- a family's candidates (one metric, with or without the first
  convolution) give points (keep, use of the tightest budget); the
  families whose metric aims at an exceeded budget come first, the most
  exceeded first (``ram`` for RAM, ``latency`` for latency or energy,
  ``size`` for flash);
- between the largest keep that fits and the smallest above it that does
  not, the edge is interpolated; with no fitting point yet, it is
  extrapolated along the line through the two lowest misses, or from the
  model alone taken to fall in proportion to keep (fixed costs make it fall
  slower, so that guess errs towards too little pruning and the next round
  corrects it). A family whose misses show the binding budget not falling
  (RAM set by a layer it never prunes) gets no more candidates. (Whether a
  first-convolution family prunes that convolution at all is the
  allocator's choice per keep: a candidate measured as its twin without
  it says nothing of the next keep, so both families are always kept);
- the proposal is the largest untried keep on the grid predicted to fit,
  with reconstruction on (it is kept by the build only if it helps) and the
  baseline's weight scales.

It depends only on the measured candidates, so a resumed or distributed
search proposes the same ones. Nothing is proposed when the model as it is
already fits: pruning then only adds damage.
"""

from __future__ import annotations

import math
from dataclasses import replace

from edgepipe.fit.space import KEEP_MIN, KEEP_STEP, METRIC_FOR_BUDGET, METRICS, Knobs


def edge_candidates(records, baseline: Knobs, first_allowed: bool = True) -> list[Knobs]:
    """At most one candidate per family (metric, and whether the first convolution is pruned), not built before."""
    scored = [r for r in records if r.score is not None and r.score.budgets]
    base = next((r for r in scored if not r.knobs.prunes), None)
    if base is None or _tightest(base.score) <= 1.0:
        return []
    tried = {r.knobs for r in records}
    firsts = (False, True) if first_allowed else (False,)
    out = []
    for metric in _metrics_by_binding(base.score):
        for first in firsts:
            knobs = _family_edge(scored, base, tried, Knobs(1.0, metric, True, baseline.per_channel, first=first))
            if knobs is not None:
                out.append(knobs)
    return out


def _metrics_by_binding(score) -> list[str]:
    """Every metric; first those aimed at the budgets the model exceeds, the most exceeded first
    (a batch has few edge slots: the metric of a budget already met would only add damage)."""
    over = sorted((b for b in score.budgets if b.ratio > 1.0), key=lambda b: -b.ratio)
    aimed = list(dict.fromkeys(METRIC_FOR_BUDGET[b.name] for b in over if b.name in METRIC_FOR_BUDGET))
    return aimed + [m for m in METRICS if m not in aimed]


def _family_edge(scored, base, tried: set, family: Knobs) -> Knobs | None:
    """``family`` (its metric and first-conv choice, reconstruction on) at its edge's keep, if untried."""
    same = [r for r in scored if r.knobs.prunes and (r.knobs.metric, r.knobs.first) == (family.metric, family.first)]
    points = [(1.0, _tightest(base.score))] + [(r.knobs.keep, _tightest(r.score)) for r in same]
    keep = _edge(points, lambda keep: replace(family, keep=keep) not in tried)
    return None if keep is None else replace(family, keep=keep)


def _edge(points: list[tuple[float, float]], untried) -> float | None:
    """The largest untried grid keep predicted to use at most every budget, between what fits and what misses."""
    best_fit = max((p for p in points if p[1] <= 1.0), default=None)
    misses = sorted(p for p in points if p[1] > 1.0 and (best_fit is None or p[0] > best_fit[0]))
    guess = _guess(best_fit, misses)
    if guess is None:
        return None
    floor = best_fit[0] if best_fit is not None else KEEP_MIN - KEEP_STEP
    keep = max(KEEP_MIN, _on_grid(min(guess, misses[0][0] - KEEP_STEP)))
    while floor + 1e-9 < keep < misses[0][0] - 1e-9:
        if untried(keep):
            return keep
        keep = _on_grid(keep - KEEP_STEP)
    return None


def _guess(best_fit, misses) -> float | None:
    """Where use crosses 1: interpolated between a fit and a miss, else extrapolated from the misses
    (in proportion from one; along the line through the lowest two, None when use does not fall)."""
    low = misses[0]
    if best_fit is not None:
        (k0, u0), (k1, u1) = best_fit, low
        return k0 + (k1 - k0) * (1.0 - u0) / (u1 - u0) if u1 > u0 else k0
    if len(misses) == 1:
        return low[0] / low[1]
    (k0, u0), (k1, u1) = misses[0], misses[1]
    slope = (u1 - u0) / (k1 - k0)
    if slope <= 0.02:  # pruning more does not lower this budget (it is set by layers this family keeps)
        return None
    return k0 - (u0 - 1.0) / slope


def _on_grid(keep: float) -> float:
    """Down to the keep grid (the float noise of 0.7000000001 does not round 0.70 down to 0.65)."""
    return round(math.floor(keep / KEEP_STEP + 1e-6) * KEEP_STEP, 4)


def _tightest(score) -> float:
    return max(b.ratio for b in score.budgets)
