"""The output folder is one transaction: killed builds never leave a mix; no symlink is followed; strict JSON."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import edgepipe
from edgepipe.cli import cli
from edgepipe.pipeline.lock import LOCK_NAME

REPO = Path(__file__).resolve().parents[2]


def _kill_test():
    spec = importlib.util.spec_from_file_location("kill_test", REPO / "tools" / "kill_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_fifty_sigkills_at_random_moments_leave_one_complete_build(project, tmp_path):
    """tools/kill_test.py's harness, 50 kills (the tool runs 200+): every folder is exactly one build."""
    kill_test = _kill_test()
    tally = kill_test.run(50, project, "rpi4", tmp_path, seed=1)
    print(tally.summary())
    assert tally.kills == 50
    assert sum(tally.landed.values()) == 50 and sum(tally.outcome.values()) == 50


def _build(project, out, *extra):
    return CliRunner().invoke(cli, ["build", "-t", "rpi4", "-c", str(project), "-o", str(out), "-q", *extra])


def _one_line_error(res, *parts):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for part in parts:
        assert part in lines[0], lines[0]


def test_a_symlink_at_the_lock_path_is_refused_and_its_target_untouched(project, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / LOCK_NAME).symlink_to(victim)
    res = _build(project, out)
    _one_line_error(res, f"{out / LOCK_NAME}: expected edgepipe's lock file, found a symlink to {victim}")
    assert victim.read_text() == "precious\n"
    assert sorted(os.listdir(out)) == [LOCK_NAME] and (out / LOCK_NAME).is_symlink()


def test_a_hard_link_at_the_lock_path_is_refused_and_its_target_untouched(project, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.link(victim, out / LOCK_NAME)
    _one_line_error(_build(project, out), f"{out / LOCK_NAME}: expected edgepipe's lock file", "hard link")
    assert victim.read_text() == "precious\n"


def _refuse_constant(name):
    raise ValueError(f"not RFC 8259 JSON: {name}")


def _non_finite_paths(value, path=()):
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _non_finite_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _non_finite_paths(v, (*path, i))


def test_report_and_manifest_are_strict_json_with_null_for_an_infinite_sqnr(project, tmp_path):
    result = edgepipe.build("rpi4", project, out=tmp_path / "out")
    in_memory = json.loads(json.dumps(result.report.to_dict(), default=str))  # Python's json: inf stays inf
    infinite = list(_non_finite_paths(in_memory))
    assert infinite and any("sqnr" in str(p[-1]) for p in infinite), "the tiny model has an exact (inf dB) layer"
    doc = json.loads((tmp_path / "out" / "report.json").read_text(), parse_constant=_refuse_constant)
    for path in infinite:
        value = doc
        for key in path:
            value = value[key]
        assert value is None, path
    json.loads((tmp_path / "out" / "manifest.json").read_text(), parse_constant=_refuse_constant)


def test_a_rebuild_replaces_the_folder_and_the_manifest_lists_every_file(project, tmp_path):
    out = tmp_path / "out"
    first = _build(project, out, "--emit", "c")
    assert first.exit_code == 0, first.output
    result = edgepipe.build("rpi4", project, out=out)  # without C sources: their files go
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(os.listdir(out)) == sorted([a["path"] for a in manifest["artifacts"]] + ["manifest.json", "report.json"])
    assert manifest["report"] == "report.json" and not (out / "model_data.cc").exists()
    assert result.artifacts == {name: out / name for name in result.artifacts}
    assert all(p.is_file() for p in result.artifacts.values())
    assert [p.name for p in tmp_path.iterdir() if ".edgepipe-" in p.name] == []


def test_files_edgepipe_did_not_write_stop_the_build_before_anything_changes(project, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    _one_line_error(_build(project, out), f"{out}: expected an empty folder or one an edgepipe build wrote",
                    "notes.txt")
    assert sorted(os.listdir(out)) == ["notes.txt"]


def _read_only(folder: Path):
    """Root ignores permission bits: make the folder immutable then (needs CAP_LINUX_IMMUTABLE)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"running as root and chattr +i failed: {done.stderr.decode().strip()}")
    return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_output_folder_is_exit_2_in_one_line_and_left_as_it_was(project, tmp_path):
    out = tmp_path / "out"
    assert _build(project, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    undo = _read_only(out)
    try:
        res = _build(project, out)
    finally:
        undo()
    _one_line_error(res, f"error: {out}: expected a location edgepipe can write")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if ".edgepipe-" in p.name] == []


def test_an_output_whose_parent_is_a_file_is_exit_2_in_one_line(project, tmp_path):
    parent = tmp_path / "a-file"
    parent.write_text("not a folder\n")
    _one_line_error(_build(project, parent / "out"), f"error: {parent / 'out'}: expected a location edgepipe can write",
                    "not a directory")
    assert parent.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a-file", "edgepipe.yaml"])


def test_a_full_disk_is_exit_2_in_one_line_and_leaves_no_file(project, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        res = _build(project, disk / "out")
        left = sorted(os.listdir(disk))
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    _one_line_error(res, f"{disk / 'out'}/", "expected a location edgepipe can write", "no space left on device")
    assert left == []


def test_verify_refuses_to_write_its_report_onto_the_model(tflite_path, data_npz, tmp_path):
    model = tmp_path / "m.tflite"
    shutil.copyfile(tflite_path, model)
    before = model.read_bytes()
    res = CliRunner().invoke(cli, ["verify", str(model), "-t", "rpi4", "-d", str(data_npz), "--x", "x_eval",
                                   "--y", "y_eval", "-q", "--report", str(model)])
    _one_line_error(res, f"{model}: expected a report path other than the model being verified")
    assert model.read_bytes() == before
