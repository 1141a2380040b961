"""The fit's rules on plain values: the damage scale, feasibility, nearest miss, Pareto fronts, the choice.

No TensorFlow: these read report dicts the way a fit reads its candidates' report.json.
"""

from __future__ import annotations

import math

import pytest

from edgepipe.config.project import Removed, load_project
from edgepipe.fit.choose import choose, headroom, leanest, nearest_miss, pareto
from edgepipe.fit.score import UNBOUNDED, score_report
from edgepipe.fit.space import Knobs
from edgepipe.fit.trial import TrialRecord


def _check(name, status, measured, budget, unit=""):
    return {"name": name, "status": status, "measured": measured, "budget": budget, "unit": unit}


def _report(ram, latency, accuracy_check, exit_code=None, extra=()):
    checks = [_check("ram", "pass" if ram <= 1000 else "fail", ram, 1000, "bytes"),
              _check("latency", "pass" if latency <= 0.01 else "fail", latency, 0.01, "s"),
              _check("energy", "skip", 5.0, None, "µJ"), accuracy_check, *extra]
    failed = any(c["status"] == "fail" for c in checks)
    code = exit_code if exit_code is not None else int(failed)
    return {"exit_code": code, "status": "failed" if failed else "passed", "checks": checks}


def _record(number, ram, latency, acc, keep=1.0):
    return TrialRecord(number, "search", Knobs(keep=keep), score_report(_report(ram, latency, acc)), "", 0.0)


def test_damage_is_the_share_of_the_tolerance_whatever_the_unit():
    drop = score_report(_report(500, 0.005, _check("accuracy", "pass", 0.5, 2.0, "points")))
    changed = score_report(_report(500, 0.005, _check("accuracy", "fail", 3.0, 2.0, "% changed class")))
    sqnr = score_report(_report(500, 0.005, _check("accuracy", "pass", 25.0, 15.0, "dB SQNR (min)")))
    assert drop.damage == pytest.approx(0.25)
    assert changed.damage == pytest.approx(1.5)
    assert sqnr.damage == pytest.approx(0.1)  # 10 dB better than the minimum: a tenth of the allowed noise
    assert drop.feasible and not changed.feasible


def test_the_worst_accuracy_check_counts_and_a_skipped_one_does_not():
    report = _report(500, 0.005, _check("accuracy", "pass", 0.2, 1.0, "points"),
                     extra=[_check("accuracy_vs_original", "fail", 3.0, 1.0, "points")])
    assert score_report(report).damage == pytest.approx(3.0)
    unmeasured = score_report(_report(500, 0.005, _check("accuracy", "skip", None, None)))
    assert unmeasured.damage is None


def test_a_zero_tolerance_exceeded_is_unbounded_not_a_division_error():
    score = score_report(_report(500, 0.005, _check("accuracy", "fail", 0.5, 0.0, "points")))
    assert score.damage == UNBOUNDED and math.isfinite(score.damage)


def test_budgets_without_a_budget_are_not_scored():
    score = score_report(_report(1200, 0.02, _check("accuracy", "pass", 0.0, 1.0, "points")))
    assert [b.name for b in score.budgets] == ["ram", "latency"]
    assert score.use("ram") == pytest.approx(1.2)
    misses = {m["check"]: m for m in score.misses()}
    assert misses["ram"]["over_by_percent"] == pytest.approx(20.0)
    assert misses["latency"]["over_by_percent"] == pytest.approx(100.0)
    assert score.excess() == pytest.approx(0.2 + 1.0)


def test_choice_prefers_least_damage_then_a_budget_when_asked():
    acc = lambda d: _check("accuracy", "pass", d, 1.0, "points")  # noqa: E731
    records = [_record(0, 1500, 0.02, acc(0.0)), _record(1, 900, 0.009, acc(0.4), 0.7),
               _record(2, 600, 0.004, acc(0.8), 0.4), _record(3, 950, 0.008, acc(0.4), 0.6)]
    assert choose(records).number == 3  # 1 and 3 use 40 % of the tolerance; 3 uses less of the budgets in all
    assert choose(records, "ram").number == 2
    assert choose(records, "latency").number == 2
    assert sorted(pareto(records)) == [0, 1, 2, 3]  # 1 and 3 trade RAM for latency: neither beats the other


def test_nearest_miss_is_the_one_missing_least():
    acc = _check("accuracy", "pass", 0.0, 1.0, "points")
    records = [_record(0, 3000, 0.02, acc), _record(1, 1100, 0.011, acc, 0.5), _record(2, 1050, 0.03, acc, 0.5)]
    assert choose(records) is None
    assert nearest_miss(records).number == 1  # 10 % + 10 % over beats 5 % + 200 %


def test_pareto_per_budget_keeps_only_candidates_nobody_beats():
    acc = lambda d: _check("accuracy", "pass", d, 1.0, "points")  # noqa: E731
    records = [_record(0, 900, 0.009, acc(0.1)), _record(1, 800, 0.009, acc(0.1), 0.8),
               _record(2, 500, 0.002, acc(0.9), 0.3)]
    assert pareto(records, "ram") == [1, 2]
    assert pareto(records) == [1, 2]


def test_a_candidate_replaces_the_projects_pruning_and_unpruned_removes_it(tmp_path):
    cfg = tmp_path / "edgepipe.yaml"
    cfg.write_text("model: m.keras\nprune: {ratio: 0.3, importance: l2, finetune: {epochs: 4, learning_rate: 0.01}}\n")
    project = load_project(cfg)
    pruned = Knobs(keep=0.6, metric="latency", reconstruct=True, per_channel=False, finetune_epochs=2)
    over = pruned.overrides(project)
    assert over["prune"]["target"] == {"latency": 0.6} and over["prune"]["importance"] == "l2"
    assert over["prune"]["finetune"] == {**project.prune.finetune.model_dump(), "epochs": 2}
    assert load_project(cfg, over).prune.target.metric == "latency"
    assert load_project(cfg, over).quantization.per_channel is False
    unpruned = Knobs().overrides(project)
    assert isinstance(unpruned["prune"], Removed)
    assert load_project(cfg, unpruned).prune is None


def test_a_model_that_fits_learns_its_headroom_and_the_leanest_candidates():
    acc = lambda d: _check("accuracy", "pass" if d <= 1.0 else "fail", d, 1.0, "points")  # noqa: E731
    records = [_record(0, 800, 0.008, acc(0.0)), _record(1, 500, 0.007, acc(0.5), 0.6),
               _record(2, 700, 0.003, acc(0.9), 0.4), _record(3, 300, 0.002, acc(1.5), 0.2)]
    assert choose(records).number == 0  # the model as it is: no damage
    assert {b["check"]: b["left_percent"] for b in headroom(records[0].score)} == {"ram": 20.0, "latency": 20.0}
    lean = leanest(records)
    assert lean["ram"].number == 1 and lean["latency"].number == 2  # 3 is smaller and faster but over the tolerance
