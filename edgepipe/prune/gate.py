"""Keep a recovery step only if it brings the pruned model closer to the original.

A recovery step (BatchNormalization re-calibration, least-squares
reconstruction) is a guess that usually helps: fresh statistics measured on
skewed or too few inputs can make a pruned model worse (one real model went
from 45 % to 30 % agreement). So each step is judged on held-out inputs the
step did not see: the mean over outputs of an error against the unpruned
model's outputs (``1 - top-1 agreement`` for a classifier, MSE over the
variance of the original's output for the others), before and after. A step
that does not lower it is undone, its weights restored exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import keras
import numpy as np

from edgepipe.prune.recovery import agreement, predict_named


@dataclass(frozen=True)
class StepDecision:
    """What happened to one recovery step: ``kept``, and the figures it was judged on.

    ``before``/``after``: per output ``{"agreement": percent}`` or ``{"relative_mse": value}``
    against the unpruned model; ``error_*``: their mean as an error (lower is better)."""

    step: str
    kept: bool
    measured: bool
    reason: str
    data: str | None = None
    before: dict | None = None
    after: dict | None = None
    error_before: float | None = None
    error_after: float | None = None

    @property
    def decision(self) -> str:
        return "kept" if self.kept else "reverted"

    def to_dict(self) -> dict:
        return {"decision": self.decision, **asdict(self)}


class Judge:
    """Held-out inputs and the unpruned model's outputs on them, computed once."""

    def __init__(self, original: keras.Model, x, tasks: Mapping[str, str], where: str):
        self.x, self.tasks, self.where = x, dict(tasks), where
        self.reference = predict_named(original, x)

    def __call__(self, model: keras.Model) -> tuple[dict, float]:
        """(per-output figures against the original, their mean error)."""
        figs = agreement(predict_named(model, self.x), self.reference, self.tasks)
        errors = [1.0 - f["agreement"] / 100.0 if "agreement" in f else f["relative_mse"] for f in figs.values()]
        return figs, float(np.mean(errors))


def keep_if_better(step: str, model: keras.Model, judge: Judge | None, run: Callable[[], bool]) -> StepDecision:
    """Run ``run()`` (it changes ``model`` in place, True if it changed anything), then keep its
    effect only if the held-out error went down; otherwise restore every weight as it was.

    Without held-out inputs nothing can be proven: the step is kept and the decision says so."""
    if judge is None:
        changed = run()
        return StepDecision(step, changed, False, "kept without measuring: no held-out inputs"
                            if changed else "nothing to do")
    saved = model.get_weights()
    before, error_before = judge(model)
    if not run():
        return StepDecision(step, False, False, "nothing to do", judge.where, before, None, error_before)
    after, error_after = judge(model)
    kept = error_after < error_before
    if not kept:
        model.set_weights(saved)
    reason = ("it lowered the error against the unpruned model on held-out inputs" if kept else
              "reverted: it did not lower the error against the unpruned model on held-out inputs")
    return StepDecision(step, kept, True, reason, judge.where, before, after, error_before, error_after)
