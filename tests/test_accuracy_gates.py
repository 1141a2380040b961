"""The accuracy gate holds where the float model's error is 0 or its accuracy is 0.

``accuracy_check`` is fed sections shaped like the harness's (``_section``),
built from real arrays with :mod:`edgepipe.harness.metrics`: a regression
checked against the float model's own outputs has a float RMSE of exactly 0,
and a percentage of 0 allows nothing -- the old gate called that a 0% increase
and passed any quantized error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from edgepipe.config.schema import Accuracy
from edgepipe.config.targets import TargetRegistry
from edgepipe.harness import metrics
from edgepipe.pipeline.evaluate import accuracy_check

LABELS = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)


def regression(float_pred: np.ndarray, quant_pred: np.ndarray) -> dict:
    """The harness's regression section for these predictions of ``LABELS``."""
    return {"task": "regression", "samples": len(LABELS), "output_error": metrics.output_error(float_pred, quant_pred),
            "float": metrics.regression(LABELS, float_pred), "quantized": metrics.regression(LABELS, quant_pred),
            "outputs": [{"name": "y", "quantized_vs_float": metrics.output_error(float_pred, quant_pred)}]}


def classification(float_top1: float, quant_top1: float) -> dict:
    return {"task": "classification", "samples": 1000, "float": {"top1": float_top1, "top5": 100.0, "samples": 1000},
            "quantized": {"top1": quant_top1, "top5": 100.0, "samples": 1000}, "agreement": 90.0}


def with_rmse_error(rmse: float) -> np.ndarray:
    """LABELS plus an error whose RMSE is ``rmse`` (a constant offset)."""
    return LABELS + np.float32(rmse)


def old_regression_verdict(f: float, q: float, max_drop: float) -> tuple[float, str]:
    """The gate as it was, for f > 0."""
    drop = 100.0 * (q - f) / f
    return drop, "pass" if drop <= max_drop + 1e-9 else "fail"


# ------------------------------------------------------------------ float RMSE 0

def test_float_rmse_zero_and_quantized_error_fails_by_default():
    acc = regression(LABELS, with_rmse_error(0.01))
    assert acc["float"]["rmse"] == 0.0 and acc["quantized"]["rmse"] == pytest.approx(0.01, rel=1e-3)
    check = accuracy_check(acc, Accuracy())
    assert check.status == "fail" and check.unit == "RMSE increase" and check.budget == 0.0
    assert check.measured == pytest.approx(0.01, rel=1e-3)
    assert "accuracy.max_rmse_increase" in check.detail and "float RMSE is 0" in check.detail


@pytest.mark.parametrize("error, tolerance, status", [(0.03, 0.02, "fail"), (0.01, 0.02, "pass"), (0.0, 0.0, "pass")])
def test_float_rmse_zero_is_held_to_max_rmse_increase(error, tolerance, status):
    acc = regression(LABELS, with_rmse_error(error))
    check = accuracy_check(acc, Accuracy(max_drop=50, max_rmse_increase=tolerance))
    assert (check.status, check.budget, acc["drop_unit"]) == (status, tolerance, "RMSE increase")
    assert acc["drop"] == pytest.approx(error, rel=1e-3, abs=1e-12)


def test_a_tiny_absolute_increase_is_reported_not_rounded_to_zero():
    check = accuracy_check(regression(LABELS, with_rmse_error(3e-5)), Accuracy())
    assert check.status == "fail" and check.measured == pytest.approx(3e-5, rel=1e-2)


def test_near_zero_float_rmse_passes_within_the_absolute_tolerance_only():
    """A float RMSE of 1e-6 makes any real quantization error a huge percentage."""
    acc = regression(with_rmse_error(1e-6), with_rmse_error(0.01))
    assert 0 < acc["float"]["rmse"] < 1e-5
    assert accuracy_check(dict(acc), Accuracy()).status == "fail"
    assert accuracy_check(dict(acc), Accuracy(max_rmse_increase=0.02)).status == "pass"


# ------------------------------------------------------------------ float RMSE above 0: as before

@pytest.mark.parametrize("f, q, max_drop", [(0.5, 0.504, 1.0), (0.5, 0.506, 1.0), (0.5, 0.49, 0.0),
                                            (0.2, 0.3, 60.0), (0.2, 0.3, 40.0), (1.0, 1.0, 0.0)])
def test_float_rmse_above_zero_gives_the_verdict_it_always_did(f, q, max_drop):
    acc = regression(with_rmse_error(f), with_rmse_error(q))
    f_m, q_m = acc["float"]["rmse"], acc["quantized"]["rmse"]
    drop, status = old_regression_verdict(f_m, q_m, max_drop)
    check = accuracy_check(acc, Accuracy(max_drop=max_drop))
    assert (check.status, check.measured, check.budget, check.unit) == (status, round(drop, 4), max_drop,
                                                                         "% RMSE increase")


def test_every_builtin_profile_keeps_its_regression_verdicts_above_zero():
    reg = TargetRegistry([])
    grid = [(f, q) for f in (1e-3, 0.1, 2.0) for q in (0.5 * f, f, 1.005 * f, 1.01 * f, 1.02 * f, 3 * f)]
    for name in reg.names():
        rule = reg.get(name).profile.accuracy
        for f, q in grid:
            acc = {"task": "regression", "float": {"rmse": f}, "quantized": {"rmse": q}}
            assert accuracy_check(acc, rule).status == old_regression_verdict(f, q, rule.max_drop)[1], (name, f, q)


def test_max_rmse_increase_widens_a_small_relative_allowance():
    """Allowed: max(max_drop % of the float RMSE, max_rmse_increase)."""
    rule = Accuracy(max_drop=1.0, max_rmse_increase=0.01)  # 1% of 0.5 is 0.005
    ok = accuracy_check(regression(with_rmse_error(0.5), with_rmse_error(0.508)), rule)
    over = accuracy_check(regression(with_rmse_error(0.5), with_rmse_error(0.512)), rule)
    assert (ok.status, ok.unit, ok.budget) == ("pass", "RMSE increase", 0.01)
    assert (over.status, over.unit) == ("fail", "RMSE increase")
    big = accuracy_check(regression(with_rmse_error(5.0), with_rmse_error(5.04)), rule)  # 1% of 5 is 0.05
    assert (big.status, big.unit, big.budget) == ("pass", "% RMSE increase", 1.0)


@pytest.mark.parametrize("bad", [-0.1, math.inf, math.nan, "small"])
def test_max_rmse_increase_must_be_a_finite_non_negative_number(bad):
    with pytest.raises(ValidationError, match="max_rmse_increase"):
        Accuracy(max_rmse_increase=bad)


# ------------------------------------------------------------------ classification

@pytest.mark.parametrize("quant_top1", [0.0, 10.0])
def test_relative_drop_from_a_float_top1_of_zero_fails(quant_top1):
    acc = classification(0.0, quant_top1)
    check = accuracy_check(acc, Accuracy(drop_mode="relative", max_drop=5))
    assert check.status == "fail" and acc["drop"] == math.inf and "check the eval labels" in check.detail
    assert metrics.accuracy_drop(0.0, quant_top1, "relative") == math.inf


@pytest.mark.parametrize("f, q, mode, drop, status", [(90.0, 89.5, "absolute", 0.5, "pass"),
                                                      (90.0, 88.5, "absolute", 1.5, "fail"),
                                                      (50.0, 49.6, "relative", 0.8, "pass"),
                                                      (50.0, 49.4, "relative", 1.2, "fail"),
                                                      (0.0, 0.0, "absolute", 0.0, "pass")])
def test_classification_verdicts_are_unchanged_elsewhere(f, q, mode, drop, status):
    check = accuracy_check(classification(f, q), Accuracy(drop_mode=mode, max_drop=1.0))
    assert check.status == status and check.measured == pytest.approx(drop)
    assert metrics.accuracy_drop(f, q, mode) == pytest.approx(drop)
