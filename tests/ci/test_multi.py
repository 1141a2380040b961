"""Several targets in one command: one artifact set each, one table, the worst exit code."""

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from ci.helpers import one_json_document, run_edgepipe, tiny_profile
from edgepipe.cli import cli


def test_two_targets_in_parallel_processes(project, tmp_path):
    """The real console script: spawned workers, stdout still one JSON document."""
    res = run_edgepipe("build", "-t", "rpi4", "-t", "android-arm64", "-c", project, "-o", tmp_path / "out", "--json",
                       "--junit-xml", tmp_path / "junit.xml")
    assert res.returncode == 0, res.stderr
    doc = one_json_document(res.stdout)
    assert doc["exit_code"] == 0 and [t["target"] for t in doc["targets"]] == ["rpi4", "android-arm64"]
    for name in ("rpi4", "android-arm64"):
        assert (tmp_path / "out" / name / "model.tflite").stat().st_size > 0
        report = json.loads((tmp_path / "out" / name / "report.json").read_text())
        assert report["target"]["name"] == name and report["status"] == "passed"
    suites = ET.parse(tmp_path / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["edgepipe.build.rpi4", "edgepipe.build.android-arm64"]


def test_combined_exit_code_and_summary(project, tmp_path):
    small = tiny_profile(tmp_path, memory={"flash": "1KiB"})
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-t", str(small), "-c", str(project),
                                   "-o", str(tmp_path / "out"), "-j", "1"])
    assert res.exit_code == 1, res.output
    assert "✗ rpi4-custom flash: model file" in res.output
    assert res.output.strip().splitlines()[-1] == "FAILED: 1 passed, 1 failed, 0 stopped on bad input: exit 1"
    quiet = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-t", str(small), "-c", str(project),
                                     "-o", str(tmp_path / "out"), "-j", "1", "-q"])
    assert quiet.exit_code == 1 and "rpi4-custom" in quiet.output
    assert "│ rpi4 " not in quiet.output, "quiet: passing targets are not listed"


def test_a_usage_error_in_one_target_gives_exit_2_and_the_others_still_build(project, tmp_path):
    """A float16 scheme is refused by int8-only targets only."""
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-t", "coral-edgetpu", "-c", str(project),
                                   "-o", str(tmp_path / "out"), "-j", "1", "--json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 0, "control: both build with the project's settings"
    assert doc["exit_code"] == 0
    bad_cfg = project.parent / "float16.yaml"
    bad_cfg.write_text(project.read_text() + "quantization: {scheme: float16}\n")
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-t", "coral-edgetpu", "-c", str(bad_cfg),
                                   "-o", str(tmp_path / "out2"), "-j", "1", "--json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 2 and doc["exit_code"] == 2
    by_name = {t["target"]: t for t in doc["targets"]}
    assert by_name["rpi4"]["status"] == "passed"
    assert by_name["coral-edgetpu"]["status"] == "error" and "int8-only" in by_name["coral-edgetpu"]["error"]


def test_an_unknown_target_stops_before_anything_builds(project, tmp_path):
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-t", "rpi5", "-c", str(project), "-o", str(tmp_path)])
    assert res.exit_code == 2 and "unknown target 'rpi5'" in res.output
    assert not (tmp_path / "rpi4").exists()


def test_all_targets_and_project_targets_resolve(project):
    from edgepipe.api import project_targets, registry, resolve_targets
    from edgepipe.config.project import load_project

    names = [r.name for _, r in resolve_targets(None, True, load_project(project))]
    assert names == registry().names() and {"rpi4", "esp32-s3", "ethos-u55"} <= set(names)
    pinned = load_project(project, {"target": ["rpi4", "stm32h7", "rpi4"]})
    assert [r.name for _, r in resolve_targets(None, False, pinned)] == ["rpi4", "stm32h7"]
    assert project_targets(project, overrides={"target": "esp32-s3"}) == ["esp32-s3"]


def test_no_target_anywhere_is_a_usage_error(project):
    res = CliRunner().invoke(cli, ["build", "-c", str(project)])
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {project}: no target given (pass --target NAME, or set 'target:' "
                                  "in edgepipe.yaml)")
