"""Float model and quantized model side by side on the eval data."""

from __future__ import annotations

import numpy as np

from edgepipe.checks import Check
from edgepipe.config.schema import Accuracy
from edgepipe.pipeline.progress import Progress
from edgepipe.runtimes.litert import LiteRTRunner
from edgepipe.verify import metrics


def predict_keras(model, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Float reference outputs from the Keras model itself."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)


def predict_tflite(runner: LiteRTRunner, x: np.ndarray, progress: Progress, label: str) -> np.ndarray:
    with progress.task(label, len(x)) as update:
        return runner.predict(x, on_batch=update)


def compare(task: str, y: np.ndarray, float_out: np.ndarray, quant_out: np.ndarray, n_classes: int | None) -> dict:
    """The accuracy section of the report."""
    out = {"task": task, "samples": int(len(y)),
           "output_error": metrics.output_error(float_out, quant_out)}
    if task == "classification":
        out["float"] = metrics.classification(y, float_out)
        out["quantized"] = metrics.classification(y, quant_out)
        out["agreement"] = metrics.agreement(float_out, quant_out)
        if n_classes:
            out["confusion_matrix"] = metrics.confusion_matrix(y, quant_out, n_classes)
    else:
        out["float"] = metrics.regression(y, float_out)
        out["quantized"] = metrics.regression(y, quant_out)
    return out


def accuracy_check(acc: dict | None, rule: Accuracy) -> Check:
    """Top-1 drop (classification) or RMSE growth (regression) against max_drop."""
    if acc is None:
        return Check("accuracy", "skip", detail="no eval data: accuracy was not verified (set data.eval)")
    if acc["task"] == "classification":
        f, q = acc["float"]["top1"], acc["quantized"]["top1"]
        drop = metrics.accuracy_drop(f, q, rule.drop_mode)
        unit = "points" if rule.drop_mode == "absolute" else "% of float"
        detail = f"top-1 {f:.2f}% float -> {q:.2f}% quantized: drop {drop:.2f} {unit}, max {rule.max_drop:g}"
    else:
        f, q = acc["float"]["rmse"], acc["quantized"]["rmse"]
        drop = 100.0 * (q - f) / f if f > 0 else 0.0
        unit = "% RMSE increase"
        detail = f"RMSE {f:.4g} float -> {q:.4g} quantized: +{drop:.2f}%, max {rule.max_drop:g}%"
    status = "pass" if drop <= rule.max_drop + 1e-9 else "fail"
    acc["drop"] = drop
    acc["drop_unit"] = unit
    return Check("accuracy", status, round(drop, 4), rule.max_drop, unit, detail, "measured:litert-host")
