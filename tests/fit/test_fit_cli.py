"""``edgepipe fit`` end to end: real builds of the bundled digits model on a board it does not fit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from fit_helpers import SEARCH, fit
from ci.helpers import EDGEPIPE

from edgepipe.fit.journal import state_dir_for


def _doc(out):
    return json.loads((out / "fit.json").read_text())


def _checks(report):
    return {c["name"]: c for c in report["checks"]}


def test_a_model_over_ram_and_latency_is_fitted_into_both(local_fit):
    proc, out = local_fit
    assert proc.returncode == 0, proc.stderr
    doc = _doc(out)
    base = {m["check"] for m in doc["baseline"]["misses"]}
    assert {"ram", "latency"} <= base  # the model as it is misses both budgets
    shipped = doc["shipped"]
    assert shipped["knobs"]["keep"] < 1.0 and shipped["misses"] == []
    report = json.loads((out / "report.json").read_text())
    checks = _checks(report)
    assert report["status"] == "passed" and report["prune"]["enabled"]
    for name in ("ram", "latency", "accuracy"):
        assert checks[name]["status"] == "pass"
    assert checks["ram"]["measured"] <= 7.5 * 1024
    shipped_trial = next(t for t in doc["trials"] if t["number"] == shipped["trial"])
    built = {b["name"]: b["measured"] for b in shipped_trial["score"]["budgets"]}
    assert built["ram"] == checks["ram"]["measured"]  # what fit measured is what build shipped


def test_the_output_is_a_build_plus_the_search(local_fit):
    proc, out = local_fit
    names = {p.name for p in out.iterdir()}
    assert {"model.tflite", "report.json", "report.html", "manifest.json", "model_data.cc", "fit.json",
            "pareto.svg"} <= names
    svg = (out / "pareto.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    doc = _doc(out)
    assert len(doc["trials"]) == 8 and doc["trials"][0]["label"].startswith("unpruned")
    assert set(doc["pareto_per_budget"]) == {"ram", "flash", "latency"}
    assert doc["shipped"]["trial"] in {t["number"] for t in doc["trials"]}
    shipped_ram = next(h for h in doc["shipped"]["headroom"] if h["check"] == "ram")["measured"]
    lean_ram = next(h for h in doc["leanest"]["ram"]["headroom"] if h["check"] == "ram")["measured"]
    assert set(doc["leanest"]) == {"ram", "flash", "latency"} and lean_ram <= shipped_ram
    assert not any(p.name.startswith(".") for p in out.iterdir())  # the search's state lives beside, not inside
    assert (state_dir_for(out) / "trials.jsonl").is_file()


def test_what_ships_is_the_measured_trial_byte_for_byte(local_fit):
    proc, out = local_fit
    doc = _doc(out)
    assert doc["published"] == {"trial": doc["shipped"]["trial"], "how": "copied"}
    trial = next(t for t in doc["trials"] if t["number"] == doc["shipped"]["trial"])
    measured = state_dir_for(out) / "trials" / Path(trial["out"]).name
    for name in ("model.tflite", "model_data.cc", "manifest.json", "report.html"):
        assert (out / name).read_bytes() == (measured / name).read_bytes(), name
    report, original = (json.loads((folder / "report.json").read_text()) for folder in (out, measured))
    assert report["checks"] == original["checks"] and report["created"] == original["created"]
    assert {Path(a["path"]).parent for a in report["artifacts"].values()} == {out}


def test_a_candidate_whose_trial_folder_is_gone_is_built_again(tmp_path, tight_targets, local_fit):
    proc, reference = local_fit
    out = tmp_path / "moved"
    shutil.copytree(reference, out)
    shutil.copytree(state_dir_for(reference), state_dir_for(out))  # the whole fit, moved elsewhere
    shipped = _doc(reference)["shipped"]["trial"]
    trial = next(t for t in _doc(reference)["trials"] if t["number"] == shipped)
    shutil.rmtree(state_dir_for(out) / "trials" / Path(trial["out"]).name)
    again = fit(tight_targets, out, *SEARCH)
    assert again.returncode == proc.returncode, again.stderr
    doc = _doc(out)
    assert doc["resumed_trials"] == 8 and doc["published"] == {"trial": shipped, "how": "rebuilt"}
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "passed" and report["prune"]["enabled"]
    assert {Path(a["path"]).parent for a in report["artifacts"].values()} == {out}


def test_a_budget_nothing_meets_exits_1_naming_the_nearest_miss(tmp_path, tight_targets):
    out = tmp_path / "hopeless"
    proc = fit(tight_targets, out, "--trials", "2", "--batch", "2", target="hopeless-m4")
    assert proc.returncode == 1, proc.stderr
    assert "nearest miss" in proc.stdout and "over the budget" in proc.stdout and "FAILED" in proc.stdout
    doc = _doc(out)
    assert doc["status"] == "failed" and doc["shipped"] is None
    ram = next(m for m in doc["misses"] if m["check"] == "ram")
    assert ram["budget"] == 1024 and ram["over_by_percent"] > 100
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and _checks(report)["ram"]["status"] == "fail"
    assert doc["nearest_miss"]["trial"] in {t["number"] for t in doc["trials"]}


def test_json_prints_fit_json_and_nothing_else(local_fit, tight_targets):
    proc, out = local_fit
    again = fit(tight_targets, out, *SEARCH, "--json")  # the journal is complete: nothing is built again
    assert again.returncode == 0
    doc = json.loads(again.stdout)
    assert doc == _doc(out) and doc["resumed_trials"] == 8


def test_an_interrupted_search_resumes_to_the_same_result(tmp_path, tight_targets, local_fit):
    out = tmp_path / "resumed"
    args = [str(EDGEPIPE), "fit", "--example", "digits", "-t", "tight-m4", "--targets-dir", str(tight_targets),
            "-o", str(out), *SEARCH]
    journal = state_dir_for(out) / "trials.jsonl"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= 4:
            os.killpg(proc.pid, signal.SIGKILL)  # a hard stop: no cleanup runs
            break
        time.sleep(0.1)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "fit.json").exists()
    again = fit(tight_targets, out, *SEARCH)
    assert again.returncode == local_fit[0].returncode, again.stderr
    resumed, reference = _doc(out), _doc(local_fit[1])
    assert resumed["resumed_trials"] >= 4
    assert [t["knobs"] for t in resumed["trials"]] == [t["knobs"] for t in reference["trials"]]
    assert [t["score"] for t in resumed["trials"]] == [t["score"] for t in reference["trials"]]
    assert resumed["pareto"] == reference["pareto"] and resumed["shipped"] == reference["shipped"]


def test_bad_usage_is_exit_2_in_one_line(tmp_path, tight_targets):
    unknown = fit(tight_targets, tmp_path / "u", "--trials", "2", target="no-such-board")
    assert unknown.returncode == 2 and "unknown target" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    zero = fit(tight_targets, tmp_path / "z", "--trials", "0")
    assert zero.returncode == 2 and "--trials" in zero.stderr


def test_a_search_on_ray_gives_the_same_front_as_on_local_processes(tmp_path, tight_targets, local_fit, ray_head):
    out = tmp_path / "on-ray"
    proc = fit(tight_targets, out, *SEARCH, "--ray", ray_head)
    assert proc.returncode == local_fit[0].returncode, proc.stderr
    on_ray, local = _doc(out), _doc(local_fit[1])
    assert on_ray["executor"]["kind"] == "ray" and local["executor"]["kind"] == "local"
    assert [t["knobs"] for t in on_ray["trials"]] == [t["knobs"] for t in local["trials"]]
    assert [t["score"] for t in on_ray["trials"]] == [t["score"] for t in local["trials"]]
    assert on_ray["pareto"] == local["pareto"] and on_ray["pareto_per_budget"] == local["pareto_per_budget"]
    assert on_ray["shipped"] == local["shipped"]
