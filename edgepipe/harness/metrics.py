"""Accuracy and output-error figures, as plain dicts ready for the report.

Three comparisons matter to a reviewer: a model against the labels, the
quantized model against the float one, and the device runtime against the
host reference. Each is an accumulator fed chunk by chunk (``update``) and
read once (``result``), so a dataset larger than memory is measured without
holding it; the one-call functions below feed a single chunk, so in-memory
and streaming figures come from the same arithmetic.
"""

from __future__ import annotations

import numpy as np

from edgepipe.errors import InputError


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float64).reshape(len(a), -1)


class ErrorStats:
    """How far ``test`` is from ``reference``: SQNR (dB), cosine, relative L2, RMSE, MAE, max |diff|."""

    def __init__(self) -> None:
        self.samples = self.elements = 0
        self.noise = self.signal = self.abs_sum = self.max_abs = self.cos_sum = 0.0
        self.cos_min = float("inf")

    def update(self, reference: np.ndarray, test: np.ndarray) -> None:
        ref, tst = _flat(reference), _flat(test)
        if ref.size == 0:
            return
        diff = ref - tst
        self.samples += len(ref)
        self.elements += ref.size
        self.noise += float(np.sum(diff**2))
        self.signal += float(np.sum(ref**2))
        self.abs_sum += float(np.sum(np.abs(diff)))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(diff))))
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(tst, axis=1)
        both_zero = (norms == 0) & ~np.any(diff, axis=1)
        cos = np.where(both_zero, 1.0, np.sum(ref * tst, axis=1) / np.where(norms == 0, 1, norms))
        self.cos_sum += float(np.sum(cos))
        self.cos_min = min(self.cos_min, float(np.min(cos)))

    def result(self) -> dict:
        if self.samples == 0:
            return {"samples": 0}
        return {
            "sqnr_db": sqnr_db(self.signal, self.noise),
            "cosine_mean": self.cos_sum / self.samples, "cosine_min": self.cos_min,
            "relative_l2": float(np.sqrt(self.noise / self.signal)) if self.signal > 0 else 0.0,
            "rmse": float(np.sqrt(self.noise / self.elements)), "mae": self.abs_sum / self.elements,
            "max_abs": self.max_abs, "samples": self.samples,
        }


def sqnr_db(signal: float, noise: float) -> float:
    """10 log10(signal / noise); +inf without noise, -inf without signal."""
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(signal / noise)) if signal > 0 else float("-inf")


def channel_sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """SQNR averaged over channels (the last axis): -10 log10(mean of per-channel noise/signal).

    One channel far larger than the rest dominates a plain SQNR; averaging the
    per-channel noise-to-signal ratios shows the channels it drowned.
    """
    ref = np.asarray(reference, np.float64)
    ref = ref.reshape(-1, ref.shape[-1] if ref.ndim > 1 else 1)
    diff = ref - np.asarray(test, np.float64).reshape(ref.shape)
    signal, noise = np.sum(ref**2, axis=0), np.sum(diff**2, axis=0)
    live = signal > 0
    if not live.any():
        return sqnr_db(float(signal.sum()), float(noise.sum()))
    nsr = float(np.mean(noise[live] / signal[live]))
    return float("inf") if nsr == 0 else float(-10 * np.log10(nsr))


MATRIX_MAX_CLASSES = 2048
"""Largest class count kept as a confusion matrix (2048² int64 = 32 MiB); above it there is none."""


class ClassStats:
    """Top-1 and top-k accuracy in percent, and the confusion matrix (rows: labels).

    ``n_classes``: the scores of each sample must be exactly that many (a
    classification task on an output that is not ``(N, classes)`` is refused);
    the confusion matrix is kept for at most :data:`MATRIX_MAX_CLASSES` classes.
    """

    def __init__(self, k: int = 5, n_classes: int | None = None) -> None:
        self.k, self.n_classes = k, n_classes
        self.samples = self.top1 = self.topk = 0
        keep = n_classes is not None and 0 < n_classes <= MATRIX_MAX_CLASSES
        self.matrix = np.zeros((n_classes, n_classes), np.int64) if keep else None

    def update(self, y_true: np.ndarray, scores: np.ndarray) -> None:
        if len(y_true) == 0:
            return
        y = np.asarray(y_true)
        scores = np.asarray(scores)
        per_sample = scores.shape[1:]
        if self.n_classes is not None and (scores.shape[0] != len(y) or int(np.prod(per_sample)) != self.n_classes):
            raise InputError("the model's output", f"class scores of shape (N, {self.n_classes}) for a "
                             "classification task", f"shape {scores.shape}",
                             "pass --task regression (task: regression) if the output is not class scores")
        scores = scores.reshape(len(y), -1)
        self.k = min(self.k, scores.shape[1])
        pred = scores.argmax(axis=1)
        topk = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        self.samples += len(y)
        self.top1 += int(np.sum(pred == y))
        self.topk += int(np.sum((topk == y[:, None]).any(axis=1)))
        if self.matrix is not None:
            np.add.at(self.matrix, (y, pred), 1)

    def result(self) -> dict:
        n = max(self.samples, 1)
        return {"top1": 100.0 * self.top1 / n, f"top{self.k}": 100.0 * self.topk / n, "samples": self.samples}


class AgreementStats:
    """Percent of samples whose top-1 class is the same in both."""

    def __init__(self) -> None:
        self.samples = self.same = 0

    def update(self, reference: np.ndarray, test: np.ndarray) -> None:
        self.samples += len(reference)
        self.same += int(np.sum(_flat(reference).argmax(axis=1) == _flat(test).argmax(axis=1)))

    def result(self) -> float:
        return 100.0 * self.same / self.samples if self.samples else 0.0


class LsbStats:
    """Integer outputs of two runtimes: largest difference in LSBs, how often, and where.

    ``worst`` keeps the indices of the (up to ``keep``) samples that differ most,
    for a closer look at exactly those samples.
    """

    def __init__(self, keep: int = 16) -> None:
        self.samples = self.elements = self.differing = self.samples_differing = 0
        self.max_lsb = 0
        self.histogram: dict[int, int] = {}
        self.keep = keep
        self.worst: list[tuple[int, int]] = []  # (lsb, sample index)

    def update(self, a: np.ndarray, b: np.ndarray, index: np.ndarray | None = None) -> None:
        diff = np.abs(np.asarray(a, np.int64).reshape(len(a), -1) - np.asarray(b, np.int64).reshape(len(b), -1))
        if diff.size == 0:
            return
        index = np.arange(self.samples, self.samples + len(diff)) if index is None else np.asarray(index)
        self.samples += len(diff)
        self.elements += diff.size
        self.differing += int(np.count_nonzero(diff))
        per_sample = diff.max(axis=1)
        self.samples_differing += int(np.count_nonzero(per_sample))
        self.max_lsb = max(self.max_lsb, int(per_sample.max()))
        values, counts = np.unique(diff[diff > 0], return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist()):
            self.histogram[v] = self.histogram.get(v, 0) + c
        hits = [(int(d), int(i)) for d, i in zip(per_sample, index) if d > 0]
        self.worst = sorted(self.worst + hits, key=lambda t: (-t[0], t[1]))[: self.keep]

    def result(self) -> dict:
        return {"max_lsb": self.max_lsb, "samples": self.samples, "samples_differing": self.samples_differing,
                "elements_differing": self.differing, "elements": self.elements,
                "histogram": {str(k): v for k, v in sorted(self.histogram.items())},
                "worst_samples": [i for _, i in self.worst]}


# ---------------------------------------------------------------- one-call forms (one chunk)

def _once(stats, *arrays):
    stats.update(*arrays)
    return stats


def classification(y_true: np.ndarray, scores: np.ndarray, k: int = 5) -> dict:
    """Top-1 and top-k accuracy in percent."""
    return _once(ClassStats(k), y_true, scores).result()


def confusion_matrix(y_true: np.ndarray, scores: np.ndarray, n_classes: int) -> list[list[int]]:
    return _once(ClassStats(1, n_classes), y_true, scores).matrix.tolist()


def output_error(reference: np.ndarray, test: np.ndarray) -> dict:
    """How far ``test`` is from ``reference`` (see :class:`ErrorStats`)."""
    return _once(ErrorStats(), reference, test).result()


def regression(y_true: np.ndarray, pred: np.ndarray) -> dict:
    """Predictions against targets: RMSE, MAE, relative L2, cosine, SQNR (target = signal)."""
    return output_error(y_true, pred)


def agreement(reference: np.ndarray, test: np.ndarray) -> float:
    """Percent of samples whose top-1 class is the same in both."""
    return _once(AgreementStats(), reference, test).result()


def accuracy_drop(float_acc: float, quant_acc: float, mode: str) -> float:
    """Drop in percentage points (absolute) or percent of the float accuracy (relative).

    Relative to a float accuracy of 0 the drop is +inf, so a gate fails: a
    quantized model cannot fall below 0, and a float model that never gets a
    label right points at the eval data (labels, preprocessing), not at a
    model anyone should ship on the strength of a passed check.
    """
    drop = float_acc - quant_acc
    if mode == "relative":
        return 100.0 * drop / float_acc if float_acc > 0 else float("inf")
    return drop
