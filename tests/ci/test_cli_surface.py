"""The command line as machines use it: help, --json, --quiet, NO_COLOR, stderr."""

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ci.helpers import one_json_document, run_edgepipe, tiny_profile
from edgepipe.cli import cli


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


ALL_COMMANDS = sorted(_commands(cli))


def test_the_command_set():
    assert ALL_COMMANDS == [("build",), ("cache",), ("cache", "clear"), ("cache", "info"), ("fit",), ("inspect",),
                            ("report",), ("targets",), ("targets", "list"), ("targets", "schema"),
                            ("targets", "show"), ("verify",)]


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help(path):
    res = CliRunner().invoke(cli, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"Usage: cli {' '.join(path)}")


def _command(path):
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    return cmd


@pytest.mark.parametrize("path", [p for p in ALL_COMMANDS if not isinstance(_command(p), click.Group)], ids=" ".join)
def test_every_command_has_json(path):
    assert "as_json" in {p.name for p in _command(path).params}, path


def test_json_documents_of_the_light_commands(tflite_path, data_npz):
    runner = CliRunner()
    for args in (["targets", "list", "--json"], ["targets", "show", "rpi4", "--json"], ["cache", "info", "--json"],
                 ["inspect", str(tflite_path), "-t", "rpi4", "--json"],
                 ["verify", str(tflite_path), "-t", "rpi4", "-d", str(data_npz), "--x", "x_eval", "--y", "y_eval",
                  "--json"]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 0, (args, res.output)
        json.loads(res.stdout)


def test_a_usage_error_with_json_is_still_one_document_on_stdout(tmp_path):
    (tmp_path / "x.tflite").write_bytes(b"not a model")
    res = run_edgepipe("verify", tmp_path / "x.tflite", "-t", "rpi4", "--json")
    assert res.returncode == 2
    doc = one_json_document(res.stdout)
    assert doc["status"] == "error" and doc["exit_code"] == 2 and "x.tflite" in doc["error"]
    assert res.stderr.strip().splitlines() == [f"error: {doc['error']}"]


def test_verify_json_stdout_is_pure_in_a_real_process(tflite_path, data_npz):
    """The interpreter runs in this process (latency) and in a child (accuracy): no noise may leak."""
    res = run_edgepipe("verify", tflite_path, "-t", "rpi4", "-d", data_npz, "--x", "x_eval", "--y", "y_eval",
                       "--min-accuracy", "80", "--json")
    assert res.returncode == 0, res.stderr
    doc = one_json_document(res.stdout)
    assert doc["kind"] == "verify" and doc["status"] == "passed"
    assert res.stderr == "", "no progress on stderr when it is not a terminal"


def test_quiet_prints_nothing_on_success_and_only_failures_otherwise(tflite_path, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(cli, ["inspect", str(tflite_path), "-t", "rpi4", "-q"])
    assert (ok.exit_code, ok.output) == (0, "")
    small = tiny_profile(tmp_path, memory={"flash": "1KiB"})
    bad = runner.invoke(cli, ["inspect", str(tflite_path), "-t", str(small), "-q"])
    assert bad.exit_code == 1
    lines = bad.output.strip().splitlines()
    assert lines[0] == "FAILED on target rpi4-custom (1 check): exit 1"
    assert lines[1].startswith("  ✗ flash: model file ") and "is OVER the budget 1.0 KiB" in lines[1]
    assert len(lines) == 2


def test_no_color_is_honoured(tflite_path, tmp_path):
    small = tiny_profile(tmp_path, memory={"flash": "1KiB"})
    coloured = run_edgepipe("inspect", tflite_path, "-t", small, "-q", env={"FORCE_COLOR": "1"})
    plain = run_edgepipe("inspect", tflite_path, "-t", small, "-q", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[31m" in coloured.stdout or "\x1b[1;31m" in coloured.stdout, "colour is on when forced"
    assert "31m" not in plain.stdout and "FAILED" in plain.stdout


def test_inspect_names_the_checks_that_would_fail(tflite_path, tmp_path):
    small = tiny_profile(tmp_path, parent="nrf52840", memory={"flash": "1KiB", "ram": "100B"})
    res = CliRunner().invoke(cli, ["inspect", str(tflite_path), "-t", str(small)])
    assert res.exit_code == 1
    assert "CONV_2D" in res.output and "FAILED on target nrf52840-custom (2 checks): exit 1" in res.output
    assert "✗ flash: model (.tflite)" in res.output
    assert "✗ ram: TFLM arena (" in res.output, "the arena TFLM measured, as verify and build report it"


def test_the_error_line_for_an_unknown_target():
    res = CliRunner().invoke(cli, ["verify", "m.tflite", "-t", "rpi5"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown target 'rpi5'; did you mean rpi4? Known: ")


def test_a_usage_error_click_finds_is_one_json_document_under_json():
    from ci.helpers import one_json_document, run_edgepipe

    res = run_edgepipe("verify", "--json")
    assert res.returncode == 2
    assert one_json_document(res.stdout) == {"status": "error", "exit_code": 2, "error": "Missing argument 'MODEL'."}


@pytest.mark.parametrize("signame, code, line", [("SIGINT", 130, "error: interrupted"),
                                                  ("SIGTERM", 143, "error: terminated (SIGTERM)")])
def test_ctrl_c_and_sigterm_exit_128_plus_the_signal_with_one_line_and_no_child_left(tmp_path, signame, code, line):
    """Interrupted is not "a check failed" (1): the shell's 128 + SIGINT, or 128 + SIGTERM (a CI job past its
    time limit, ``timeout``), reached by unwinding; no worker outlives the build."""
    import os
    import signal
    import subprocess
    import time
    import uuid

    from ci.helpers import EDGEPIPE

    mark = f"EDGEPIPE_TEST_MARK={uuid.uuid4().hex}"
    env = dict(os.environ, EDGEPIPE_TEST_MARK=mark.split("=")[1])
    proc = subprocess.Popen([str(EDGEPIPE), "build", "--example", "digits", "-t", "esp32-s3", "--no-cache",
                             "-o", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    time.sleep(4)  # past start-up, inside a stage
    assert proc.poll() is None and _marked(mark), "the build is running (with its children)"
    proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert err.strip().splitlines()[-1] == line and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    time.sleep(1)
    assert _marked(mark) == [], "every child process ended with the build"


def _marked(mark: str) -> list[int]:
    """Processes whose environment carries ``mark`` (the build and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_targets_errors_are_one_json_document_under_json(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nruntime: litert\nmemory: {ram: 12 bananas}\n")
    for args in (["targets", "show", "nope", "--json"], ["targets", "show", str(bad), "--json"]):
        res = CliRunner().invoke(cli, args)
        doc = one_json_document(res.stdout)
        assert res.exit_code == 2 and doc["status"] == "error" and doc["exit_code"] == 2, args
    assert "nope" in one_json_document(CliRunner().invoke(cli, ["targets", "show", "nope", "--json"]).stdout)["error"]


def test_a_converter_past_its_time_limit_is_exit_3_with_one_line_and_one_document(tmp_path):
    """The converter runs in this process and cannot be cancelled: past EDGEPIPE_CONVERT_TIMEOUT the build
    says so and ends (the real converter on the digits example; 0.05 s is far below what it needs)."""
    from ci.helpers import one_json_document, run_edgepipe

    args = ("build", "--example", "digits", "-t", "rpi4", "--no-cache", "-o", str(tmp_path / "out"), "--json")
    res = run_edgepipe(*args, env={"EDGEPIPE_CONVERT_TIMEOUT": "0.05"})
    assert res.returncode == 3 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == ("error: internal error: the TFLite converter did not finish "
                                                  "within 0.05 s (set EDGEPIPE_CONVERT_TIMEOUT to allow longer)")
    assert one_json_document(res.stdout)["exit_code"] == 3
    assert not (tmp_path / "out" / "report.json").exists(), "nothing half-written is published"
