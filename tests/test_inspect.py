"""`edgepipe inspect` on real and broken .tflite files."""

import json

from click.testing import CliRunner

from edgepipe.cli import cli


def test_inspect_prints_ops_io_and_target_checks(tiny_build):
    path = str(tiny_build.artifacts["model.tflite"])
    res = CliRunner().invoke(cli, ["inspect", path, "--target", "esp32-s3"])
    assert res.exit_code == 0, res.output
    assert "CONV_2D" in res.output and "FULLY_CONNECTED" in res.output
    assert "int8" in res.output and "int8_only" in res.output


def test_inspect_json_is_one_document(tiny_build):
    path = str(tiny_build.artifacts["model.tflite"])
    res = CliRunner().invoke(cli, ["inspect", path, "--json"])
    doc = json.loads(res.output)
    assert doc["inputs"][0]["shape"] == [1, 8, 8, 1] and doc["inputs"][0]["dtype"] == "int8"
    assert doc["ops"]["CONV_2D"] == 1 and doc["memory"]["peak_activation_bytes"] > 0


def test_inspect_fails_budget_of_a_tiny_target(tiny_build, tmp_path):
    (tmp_path / "tiny.yaml").write_text("extends: nrf52840\nmemory:\n  flash: 1KiB\n")
    res = CliRunner().invoke(cli, ["inspect", str(tiny_build.artifacts["model.tflite"]),
                                   "--target", str(tmp_path / "tiny.yaml")])
    assert res.exit_code == 1 and "FAIL" in res.output


def test_truncated_and_foreign_files_exit_2_with_one_line(tiny_build, tmp_path):
    data = tiny_build.artifacts["model.tflite"].read_bytes()
    cases = {"truncated.tflite": data[: len(data) // 3], "text.tflite": b"hello world, not a model at all",
             "empty.tflite": b"", "corrupt.tflite": data[:8] + bytes(len(data) - 8)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        res = CliRunner().invoke(cli, ["inspect", str(tmp_path / name)])
        assert res.exit_code == 2, (name, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], (name, res.output)
