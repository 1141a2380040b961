"""Does the calibration data look like the data the model will see?

The converter calibrates every activation range from the representative
samples and never complains: data in [0, 255] for a model evaluated on
[0, 1] gives an input scale of ~1.0 instead of ~0.0039 and a model that is
wrong everywhere. Sample count, shape and dtype are checked in
:mod:`edgepipe.data.validate`; this module compares value ranges with the
eval data (after preprocessing, as the model sees both).

A spread off by :data:`ERROR_RATIO` or more is an error (exit 2); off by
:data:`WARN_RATIO`, or ranges that barely overlap, a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepipe.errors import InputError

WARN_RATIO = 2.0
ERROR_RATIO = 10.0
STAT_SAMPLES = 2000


@dataclass(frozen=True)
class RangeStats:
    """Robust summary of a dataset's values: 0.1/99.9 percentiles, min, max, mean."""

    lo: float
    hi: float
    min: float
    max: float
    mean: float
    integral: bool

    @classmethod
    def of(cls, x) -> "RangeStats":
        """From at most :data:`STAT_SAMPLES` evenly spaced samples (memory-mapped data stays on disk)."""
        n = int(x.shape[0])
        idx = np.unique(np.linspace(0, n - 1, min(n, STAT_SAMPLES)).round().astype(int)) if n else []
        v = np.asarray(x[idx] if n > STAT_SAMPLES else x, np.float64).ravel()
        if v.size == 0:
            return cls(0.0, 0.0, 0.0, 0.0, 0.0, True)
        lo, hi = np.percentile(v, [0.1, 99.9])
        return cls(float(lo), float(hi), float(v.min()), float(v.max()), float(v.mean()),
                   bool(np.all(np.mod(v, 1) == 0)))

    @property
    def span(self) -> float:
        """The 0.1-99.9 percentile spread, or the full one for mostly constant data."""
        return (self.hi - self.lo) or (self.max - self.min)

    def text(self) -> str:
        return (f"values in [{self.min:.4g}, {self.max:.4g}] "
                f"(99.8% in [{self.lo:.4g}, {self.hi:.4g}], mean {self.mean:.4g})")


def check_calibration_range(rep_x, rep_where: str, eval_x=None, eval_where: str = "") -> list[str]:
    """Warnings about the representative data's range; raises InputError when it is plainly wrong."""
    rep = RangeStats.of(rep_x)
    if eval_x is None:
        return _without_eval(rep, rep_where)
    ev = RangeStats.of(eval_x)
    where = f"representative data {rep_where}"
    if ev.span > 0 and rep.span > 0:
        ratio = rep.span / ev.span
        if ratio >= ERROR_RATIO or ratio <= 1 / ERROR_RATIO:
            raise InputError(where, f"values in the range of the eval data {eval_where} ({ev.text()})",
                             f"{rep.text()}: a spread {_times(ratio)} that of the eval data",
                             "preprocess both the same way (preprocess.scale / mean / std apply to every dataset)")
        if ratio >= WARN_RATIO or ratio <= 1 / WARN_RATIO:
            return [f"{where}: spread is {_times(ratio)} that of the eval data {eval_where} "
                    f"({rep.text()} vs {ev.text()}); activation ranges calibrated on it may not fit real inputs"]
    elif rep.span == 0 and ev.span > 0:
        return [f"{where}: every value is {rep.mean:.4g}, while eval data {eval_where} has {ev.text()}; "
                "calibration cannot see the input range"]
    overlap = min(rep.hi, ev.hi) - max(rep.lo, ev.lo)
    if ev.span > 0 and overlap < 0.5 * min(rep.span, ev.span):
        return [f"{where}: {rep.text()} barely overlaps eval data {eval_where} ({ev.text()}); "
                "check that both are preprocessed the same way"]
    return []


def _without_eval(rep: RangeStats, rep_where: str) -> list[str]:
    if rep.integral and rep.max > 1.5 and rep.min >= 0 and rep.max <= 255:
        return [f"representative data {rep_where}: {rep.text()}, whole numbers, looks like raw 8-bit pixels; "
                "if the model was trained on scaled inputs, set preprocess.scale (no eval data to compare with)"]
    return []


def _times(ratio: float) -> str:
    return f"{ratio:.3g} times" if ratio >= 1 else f"1/{1 / ratio:.3g} times"


def check_against_input_range(x, where: str, tensor) -> list[str]:
    """Eval data vs the range a quantized model's input can represent.

    A converted model carries its calibration range in the input tensor's
    scale and zero point. ``edgepipe verify`` has no float model to compare
    with, so data given without the build's preprocessing (raw pixels for a
    model calibrated on [0, 1]) only shows as a silent accuracy drop; this
    names the likely cause instead.
    """
    if not tensor.scale or tensor.dtype not in ("int8", "uint8", "int16"):
        return []
    info = np.iinfo(np.dtype(tensor.dtype))
    lo = (info.min - tensor.zero_point[0]) * tensor.scale[0]
    hi = (info.max - tensor.zero_point[0]) * tensor.scale[0]
    data = RangeStats.of(x)
    span = hi - lo
    if span <= 0 or data.span == 0:
        return []
    outside = max(0.0, data.hi - hi) + max(0.0, lo - data.lo)
    if outside < 0.25 * span and data.span > 0.1 * span:
        return []
    return [f"{where}: {data.text()}, but the model's input {tensor.name!r} represents only "
            f"[{lo:.4g}, {hi:.4g}] (its calibration range); values outside saturate. "
            "Is the preprocessing (--scale/--mean/--std) the same as at build time?"]
