"""Checks that data fits the model before anything is converted.

The converter accepts wrong calibration data silently (one sample, wrong
batch, [0,255] for a [0,1] model); these checks turn each into a message
that says which dataset, what was expected and what was found.
"""

from __future__ import annotations

import numpy as np

from edgepipe.data.sources import Dataset
from edgepipe.errors import InputError

MAX_CLASSES = 1 << 20
"""Most classes a classification output may have (a model declaring more is refused before it runs)."""


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


def _check_finite(x: np.ndarray, where: str, fix: str | None = None) -> None:
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if len(x) else np.zeros(0, bool)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise InputError(where, "finite values", f"NaN or Inf in {len(idx)} sample(s), first at index {idx[0]}", fix)


def apply_preprocess(x: np.ndarray, scale: float, mean: float | list, std: float | list,
                     where: str = "data", source: str | None = None) -> np.ndarray:
    """``(x * scale - mean) / std`` — the same for calibration, eval and training.

    A list of ``mean``/``std`` has one value per channel (the last axis of
    ``x``); the result is checked for NaN and Inf, which a tiny ``std`` or a
    huge ``scale`` produce from finite data. ``where`` names the data,
    ``source`` the config the preprocessing came from.
    """
    channels = x.shape[-1] if x.ndim > 1 else 1
    for key, value in (("mean", mean), ("std", std)):
        size = np.size(value)
        if np.ndim(value) > 1 or size not in (1, channels):
            where_key = f"{source} (preprocess.{key})" if source else f"preprocess.{key}"
            raise InputError(where_key, f"one number, or one per channel ({channels}, the last axis of the "
                             "model input)", f"{size} values {value!r}")
    with np.errstate(all="ignore"):  # overflow is reported below, by sample
        out = x * np.float32(scale)
        out = (out - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        out = out.astype(np.float32)
    _check_finite(out, f"{where} after preprocessing (scale {scale!r}, mean {mean!r}, std {std!r})",
                  "check preprocess.scale, mean and std (--scale, --mean, --std)")
    return out


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
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_) or np.issubdtype(y.dtype, np.complexfloating):
        raise InputError(f"eval labels {ds.where}", "numeric labels (class ids, one-hot rows or regression targets)",
                         f"dtype {y.dtype}" + (f", e.g. {y.ravel()[:1].tolist()[0]!r}" if y.size else ""),
                         "map names to class ids (0, 1, ...) before saving")
    if task == "classification" and n_classes is not None and n_classes > MAX_CLASSES:
        raise InputError(f"the model's output (classifying eval labels {ds.where})",
                         f"at most {MAX_CLASSES} classes for a classification task", f"{n_classes} outputs",
                         "pass --task regression (task: regression) if the output is not class scores")
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
