"""Checks that data fits the model before anything is converted.

The converter accepts wrong calibration data silently (one sample, wrong
batch, [0,255] for a [0,1] model); these checks turn each into a message
that says which dataset, what was expected and what was found.
"""

from __future__ import annotations

import numpy as np

from edgepipe.data.sources import Dataset
from edgepipe.errors import InputError


def prepare_inputs(ds: Dataset, input_shape: tuple, role: str) -> np.ndarray:
    """float32 inputs shaped like the model's input (batch axis first)."""
    x = ds.x
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"{role} data {ds.where}", "a real numeric array", f"dtype {x.dtype}")
    want = tuple(input_shape[1:])
    got = tuple(x.shape[1:])
    if got != want:
        fix = None
        if got + (1,) == want:
            fix = "add a trailing channel axis (x[..., None])"
        elif len(got) == len(want) - 1 and x.ndim >= 1 and x.shape[1:] == want[1:]:
            fix = "a batch axis may be missing"
        raise InputError(f"{role} data {ds.where}", f"samples of shape {want} (model input)",
                         f"samples of shape {got}", fix)
    x = np.asarray(x, dtype=np.float32)
    _check_finite(x, f"{role} data {ds.where}")
    return x


def _check_finite(x: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if len(x) else np.zeros(0, bool)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise InputError(where, "finite values", f"NaN or Inf in {len(idx)} sample(s), first at index {idx[0]}")


def apply_preprocess(x: np.ndarray, scale: float, mean: float | list, std: float | list) -> np.ndarray:
    """``(x * scale - mean) / std`` — the same for calibration, eval and training."""
    out = x * np.float32(scale)
    out = (out - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return out.astype(np.float32)


def check_calibration(x: np.ndarray, minimum: int, where: str) -> None:
    """The converter calibrates from whatever it is given; one sample is not enough."""
    if len(x) < minimum:
        raise InputError(f"representative data {where}", f"at least {minimum} samples",
                         f"{len(x)}", "give more samples or lower quantization.min_calibration_samples")


def _one_hot(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())


def check_labels(ds: Dataset, n_samples: int, task: str, n_classes: int | None) -> np.ndarray:
    """Labels as class ids (classification) or float targets (regression)."""
    y = np.asarray(ds.y)
    if len(y) != n_samples:
        raise InputError(f"eval labels {ds.where}", f"{n_samples} labels (one per sample)", f"{len(y)}")
    if task == "regression":
        y = y.astype(np.float32)
        _check_finite(y.reshape(len(y), -1), f"eval labels {ds.where}")
        return y
    if y.ndim == 2 and n_classes is not None and y.shape[1] == n_classes:
        if not _one_hot(y):
            raise InputError(f"eval labels {ds.where}", "class ids of shape (N,) or one-hot (N, classes) rows "
                             "(0s and one 1)", f"shape {y.shape} with other values",
                             "are these regression targets? pass --task regression (task: regression)")
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise InputError(f"eval labels {ds.where}", "class ids of shape (N,) or one-hot (N, classes)",
                         f"shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise InputError(f"eval labels {ds.where}", "integer class ids", f"dtype {y.dtype} with fractions")
        y = y.astype(np.int64)
    if n_classes is not None and len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(f"eval labels {ds.where}", f"class ids in [0, {n_classes - 1}] (the model has {n_classes} outputs)",
                         f"values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)
