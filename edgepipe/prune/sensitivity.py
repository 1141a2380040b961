"""How much each channel group matters: damage measured by pruning it alone.

A uniform ratio treats every group alike, but removing half of one group can
leave the outputs almost unchanged while half of another ruins them. So each
prunable group is pruned *alone* at a few ratios (``RATIOS``, rounded to
``channel_multiple`` like any decision, duplicates skipped), the narrower
float model is run on up to ``SAMPLES`` representative inputs, and its
outputs are compared with the unpruned model's. No labels are needed.

**Damage** is the mean over outputs of the relative output error
``MSE(pruned, original) / var(original)``: 0 is unchanged, 1 is no better
than predicting the original's mean. It is continuous (top-1 agreement on a
few hundred samples moves in steps and ties at 100 % for mild prunes), and it
works the same for classifiers, regressors and raw heads. For reading, the
report also gives top-1 agreement for outputs with more than one column.

**BatchNormalization statistics** are re-measured on the same inputs for each
trial before it is compared (``recalibrate``; on by default when the model
has BatchNormalization layers), because a build re-calibrates the pruned
model before anything else (``recalibrate.py``; kept when it helps, which it
almost always does after channel removal). Without it a group that feeds a
BatchNormalization looks worse than the build will leave it, by the stale
statistics alone, and the allocator spares the wrong groups.

**Least-squares reconstruction** likewise, when the build will run it
(``reconstruct``; ``prune.reconstruct``, on by default without labelled
training data): each trial's damage is then the lesser of before and after
the refit, as the build keeps the refit only when it helps. Reconstruction
changes which groups are cheap to prune. On MLPerf Tiny's ResNet-8 (trained on
digits, label-free) uniform ratio 0.3 with reconstruction agrees 97.3 % with
the original, while allocations from damage measured without it, reconstructed
afterwards, agreed 70-80 % at similar latency: a group whose removed channels
the next convolution can absorb looked as costly as one whose cannot.

Without representative data the damage falls back to the share of the
group's importance (weight norm) removed, a weaker proxy that cannot compare
groups of different make-up; ``measured_on`` says which was used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATIOS = (0.25, 0.5, 0.75)
SAMPLES = 256


@dataclass(frozen=True)
class Point:
    """Damage when a group alone loses ``removed`` of its units (after rounding)."""

    removed: float
    damage: float
    agreement: float | None = None  # percent, mean over outputs with more than one column


@dataclass(frozen=True)
class GroupSensitivity:
    """Measured points of one group, from mild to severe; (0, 0) is implied."""

    group: int
    points: tuple[Point, ...]

    @property
    def max_removed(self) -> float:
        """The largest fraction measured: the allocator does not extrapolate beyond it."""
        return self.points[-1].removed if self.points else 0.0

    def damage_at(self, removed: float) -> float:
        """Damage at any fraction up to :attr:`max_removed`, interpolated linearly through (0, 0).

        Measured damage is made non-decreasing (the worst seen at or below each fraction): removing
        more of a group is never taken as an improvement, which a noisy measurement can suggest."""
        xs = [0.0, *(p.removed for p in self.points)]
        ys = np.maximum.accumulate([0.0, *(max(p.damage, 0.0) for p in self.points)])
        return float(np.interp(removed, xs, ys))


def sensitivity_inputs(inputs):
    """The unlabelled inputs a build measures sensitivity on: representative data, else training data.

    ``inputs`` is a build's ``ctx.inputs``; None when it has neither."""
    split = inputs.representative if inputs.representative is not None else inputs.train
    return None if split is None else split.x


def widths(units: int, ratios: tuple[float, ...], multiple: int) -> list[int]:
    """Kept counts to measure: ``ratios`` rounded as any decision is, without the unpruned width or
    repeats (with coarse rounding 0.25 can keep everything and 0.75 keep what 0.5 keeps)."""
    from edgepipe.prune.channel import kept_count

    counts = [kept_count(units, r, multiple) for r in ratios]
    return [k for i, k in enumerate(counts) if k < units and k not in counts[:i]]


def measure(space, data, ratios: tuple[float, ...] = RATIOS, *, recalibrate: bool | None = None,
            reconstruct: bool = False) -> tuple[list[GroupSensitivity], str]:
    """Per prunable group of ``space`` (a ``channel.PruneSpace``), its damage at ``ratios``; and what
    the damage was measured on, in words. ``recalibrate``: re-measure BatchNormalization statistics of
    each trial on ``data`` first (None: when the model has top-level BatchNormalization layers);
    ``reconstruct``: then refit by least squares, kept where it lowers the damage (as the build does)."""
    if data is None:
        return [_by_importance(space, i, ratios) for i in space.prunable], (
            "weights only (no representative data): damage = share of the group's importance removed")
    x = data[:SAMPLES]
    if recalibrate is None:
        recalibrate = has_batchnorm(space.model)
    reference = _predict(space.model, x)
    full = space.full()
    found = []
    for index in space.prunable:
        points = []
        for kept in widths(full[index], ratios, space.channel_multiple):
            decision = list(full)
            decision[index] = kept
            model, plans = space.build(decision)
            if recalibrate:
                _recalibrate(model, x)
            point = _compare(_predict(model, x), reference, 1.0 - kept / full[index])
            if reconstruct:
                point = min(point, _reconstructed(model, space.model, x, plans, reference, point.removed),
                            key=lambda p: p.damage)
            points.append(point)
        found.append(GroupSensitivity(index, tuple(points)))
    steps = [s for s, on in (("re-measuring BatchNormalization statistics on them", recalibrate),
                             ("least-squares reconstruction where it helps", reconstruct)) if on]
    how = f", each trial after {' and '.join(steps)} (as the build does)" if steps else ""
    return found, (f"{len(x)} representative samples: damage = relative output error vs the unpruned model"
                   f"{how}")


def has_batchnorm(model) -> bool:
    """Whether the model has a top-level BatchNormalization (what ``recalibrate_batchnorm`` re-measures)."""
    import keras

    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def _recalibrate(model, x) -> None:
    from edgepipe.prune.recalibrate import recalibrate_batchnorm

    recalibrate_batchnorm(model, x, max_samples=SAMPLES)


def _reconstructed(model, original, x, plans: dict, reference: dict, removed: float) -> Point:
    """The trial's point after the least-squares refit (``model`` is refit in place: it is a throwaway)."""
    from edgepipe.prune.rebuild import kept_indices
    from edgepipe.prune.reconstruct import reconstruct

    reconstruct(model, original, x, kept_indices(plans))
    return _compare(_predict(model, x), reference, removed)


def _predict(model, x) -> dict[str, np.ndarray]:
    from edgepipe.prune.recovery import predict_named

    return predict_named(model, x)


def _compare(outputs: dict, reference: dict, removed: float) -> Point:
    """Relative output error (mean over outputs) and top-1 agreement of the multi-column outputs."""
    errors, agree = [], []
    for name, ref in reference.items():
        out = outputs[name]
        errors.append(float(np.mean((out - ref) ** 2) / max(float(np.var(ref)), 1e-12)))
        if ref.ndim >= 2 and ref.shape[-1] > 1:
            agree.append(100.0 * float(np.mean(np.argmax(out, -1) == np.argmax(ref, -1))))
    return Point(removed, float(np.mean(errors)), float(np.mean(agree)) if agree else None)


def _by_importance(space, index: int, ratios: tuple[float, ...]) -> GroupSensitivity:
    """The data-free proxy: the share of the group's total importance that the removed units carry."""
    units, scores = space.units(index), space.scores[index]
    ranked = scores[space.order[index]]
    total = float(ranked.sum()) or 1.0
    points = [Point(1.0 - kept / units, float(ranked[kept:].sum()) / total)
              for kept in widths(units, ratios, space.channel_multiple)]
    return GroupSensitivity(index, tuple(points))
