"""Accuracy and output-error figures, as plain dicts ready for the report.

Three comparisons matter to a reviewer: a model against the labels, the
quantized model against the float one, and the device runtime against the
host reference. Each function here serves one of them.
"""

from __future__ import annotations

import numpy as np


def classification(y_true: np.ndarray, scores: np.ndarray, k: int = 5) -> dict:
    """Top-1 and top-k accuracy in percent."""
    top1 = float(np.mean(scores.argmax(axis=1) == y_true) * 100) if len(y_true) else 0.0
    k = min(k, scores.shape[1])
    topk_idx = np.argsort(-scores, axis=1)[:, :k]
    topk = float(np.mean((topk_idx == y_true[:, None]).any(axis=1)) * 100) if len(y_true) else 0.0
    return {"top1": top1, f"top{k}": topk, "samples": int(len(y_true))}


def confusion_matrix(y_true: np.ndarray, scores: np.ndarray, n_classes: int) -> list[list[int]]:
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (y_true, scores.argmax(axis=1)), 1)
    return m.tolist()


def regression(y_true: np.ndarray, pred: np.ndarray) -> dict:
    err = pred.reshape(len(pred), -1) - y_true.reshape(len(y_true), -1)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))),
            "samples": int(len(y_true))}


def output_error(reference: np.ndarray, test: np.ndarray) -> dict:
    """How far ``test`` is from ``reference``: SQNR (dB), cosine, relative L2, RMSE, max |diff|."""
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    tst = test.reshape(len(test), -1).astype(np.float64)
    noise = np.sum((ref - tst) ** 2)
    signal = np.sum(ref**2)
    sqnr = float("inf") if noise == 0 else float(10 * np.log10(signal / noise)) if signal > 0 else float("-inf")
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(tst, axis=1)
    cos = np.sum(ref * tst, axis=1) / np.where(norms == 0, 1, norms)
    return {
        "sqnr_db": sqnr, "cosine_mean": float(np.mean(cos)), "cosine_min": float(np.min(cos)),
        "relative_l2": float(np.sqrt(noise / signal)) if signal > 0 else 0.0,
        "rmse": float(np.sqrt(np.mean((ref - tst) ** 2))), "max_abs": float(np.max(np.abs(ref - tst))),
    }


def agreement(reference: np.ndarray, test: np.ndarray) -> float:
    """Percent of samples whose top-1 class is the same in both."""
    return float(np.mean(reference.argmax(axis=1) == test.argmax(axis=1)) * 100)


def accuracy_drop(float_acc: float, quant_acc: float, mode: str) -> float:
    """Drop in percentage points (absolute) or percent of the float accuracy (relative)."""
    drop = float_acc - quant_acc
    if mode == "relative":
        return 100.0 * drop / float_acc if float_acc > 0 else 0.0
    return drop
