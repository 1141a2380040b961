"""`edgepipe verify`: gate an existing .tflite on a target, without TensorFlow."""

import json
import numpy as np
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from ci.helpers import tiny_profile
from edgepipe.cli import cli


def _verify(tflite, data, *extra):
    args = ["verify", str(tflite), "-t", extra[0] if extra else "rpi4", "-d", str(data), "--x", "x_eval",
            "--y", "y_eval", *extra[1:]]
    return CliRunner().invoke(cli, args)


def test_verify_passes_and_prints_the_figures(tflite_path, data_npz, tiny_build):
    res = _verify(tflite_path, data_npz, "rpi4", "--min-accuracy", "80")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    top1 = tiny_build.report.to_dict()["accuracy"]["quantized"]["top1"]
    assert lines[0].startswith(f"edgepipe verify {tflite_path} on target rpi4: ")
    assert f"  top-1  {top1:.2f}% on 397 samples" in lines
    assert lines[-1] == "PASSED: every check within budget"


def test_verify_measures_what_the_build_measured(tflite_path, data_npz, tiny_build):
    """Same backend, same kernels, same data: the same top-1 and the build's checks, figures and sources."""
    import edgepipe

    res = edgepipe.verify(tflite_path, "rpi4", data_npz, x_key="x_eval", y_key="y_eval",
                          baseline=tiny_build.artifacts["report.json"])
    built = tiny_build.report.to_dict()
    got = res.to_dict()
    assert got["accuracy"]["quantized"]["top1"] == built["accuracy"]["quantized"]["top1"]
    assert got["accuracy"]["runtime"]["name"] == built["accuracy"]["runtime"]["name"] == "litert-xnnpack"
    fields = ("name", "status", "measured", "budget", "source")
    assert [tuple(c[k] for k in fields) for c in got["checks"]] == [tuple(c[k] for k in fields) for c in built["checks"]]
    assert res.passed and res.exit_code == 0 and got["kind"] == "verify"


def test_min_accuracy_failure_exits_1_and_names_the_figure(tflite_path, data_npz):
    res = _verify(tflite_path, data_npz, "rpi4", "--min-accuracy", "99.9")
    assert res.exit_code == 1
    assert "FAILED (1 check): exit 1" in res.output
    assert "✗ min_accuracy: top-1 " in res.output and "is BELOW the minimum 99.9%" in res.output


def test_baseline_drop_is_held_to_the_targets_max_drop(tflite_path, data_npz, tiny_build, tmp_path):
    top1 = tiny_build.report.to_dict()["accuracy"]["quantized"]["top1"]
    strict = tiny_profile(tmp_path, accuracy={"max_drop": 0.5})
    res = _verify(tflite_path, data_npz, str(strict), "--baseline-accuracy", f"{top1 + 2:.4f}")
    assert res.exit_code == 1
    assert f"✗ accuracy: top-1 {top1 + 2:.2f}% float -> {top1:.2f}% quantized: drop 2.00 points, max 0.5" in res.output
    ok = _verify(tflite_path, data_npz, str(strict), "--baseline-accuracy", f"{top1 + 0.25:.4f}")
    assert ok.exit_code == 0, ok.output


def test_baseline_from_a_report_on_other_data_adds_a_note(tflite_path, data_npz, tiny_build, tmp_path, digits):
    import numpy as np

    _, _, x_ev, y_ev = digits
    np.savez(tmp_path / "other.npz", x_eval=x_ev[:200], y_eval=y_ev[:200])
    res = _verify(tflite_path, tmp_path / "other.npz", "rpi4", "--baseline", str(tiny_build.artifacts["report.json"]))
    assert res.exit_code in (0, 1)
    assert "note: the baseline from" in res.output and "was measured on other eval data" in res.output


def test_without_data_accuracy_is_skipped_and_static_checks_still_run(tflite_path):
    res = CliRunner().invoke(cli, ["verify", str(tflite_path), "-t", "esp32-s3", "--json"])
    doc = json.loads(res.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["accuracy"]["status"] == "skip" and "pass --data" in checks["accuracy"]["detail"]
    assert {"io_dtype", "int8_only", "static_shapes"} <= set(checks)


def test_junit_xml_has_one_case_per_check_with_failures_and_skips(tflite_path, data_npz, tmp_path):
    small = tiny_profile(tmp_path, memory={"flash": "1KiB"})
    out = tmp_path / "junit.xml"
    res = _verify(tflite_path, data_npz, str(small), "--junit-xml", str(out))
    assert res.exit_code == 1
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite.get("name") == "edgepipe.verify.rpi4-custom"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"io_dtype", "accuracy", "flash", "ram", "latency", "energy", "runtime_lsb_diff",
                          "runtime_agreement"}
    failure = cases["flash"].find("failure")
    assert failure is not None and "OVER the budget 1.0 KiB" in failure.get("message")
    assert cases["accuracy"].find("skipped") is not None, "no baseline given: skipped, with the reason"
    assert cases["energy"].find("skipped") is not None, "no energy budget in the profile"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("8", "1", "2")


def test_report_file_is_written(tflite_path, data_npz, tmp_path):
    res = _verify(tflite_path, data_npz, "rpi4", "--report", str(tmp_path / "r" / "verify.json"))
    assert res.exit_code == 0
    doc = json.loads((tmp_path / "r" / "verify.json").read_text())
    assert doc["kind"] == "verify" and doc["inputs"]["model"]["sha256"] == doc["model"]["sha256"]
    assert doc["inputs"]["eval"]["samples"] == 397


@pytest.mark.parametrize("case", ["truncated", "text", "empty", "corrupt"])
def test_broken_files_exit_2_with_one_line(tflite_path, data_npz, tmp_path, case):
    data = tflite_path.read_bytes()
    content = {"truncated": data[: len(data) // 3], "text": b"hello world, not a model at all", "empty": b"",
               "corrupt": data[:8] + bytes(len(data) - 8)}[case]
    bad = tmp_path / f"{case}.tflite"
    bad.write_bytes(content)
    res = _verify(bad, data_npz)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{case}.tflite" in lines[0]


def test_a_model_the_interpreter_refuses_is_a_failed_check_naming_the_runtime(tflite_path, data_npz, tmp_path):
    """A well-formed file whose Flatten reshapes to one element too many: the reader cannot know (it is a
    constant's value), XNNPACK refuses it at load, so accuracy was not measured — a failed check, exit 1."""
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_path.read_bytes()), 0)
    graph = model.subgraphs[0]
    reshape = next(op for op in graph.operators if model.operatorCodes[op.opcodeIndex].builtinCode
                   == schema.BuiltinOperator.RESHAPE and len(op.inputs) > 1)
    buffer = model.buffers[graph.tensors[reshape.inputs[1]].buffer]
    shape = np.frombuffer(bytes(buffer.data), np.int32).copy()
    shape[-1] += 1
    buffer.data = np.frombuffer(shape.tobytes(), np.uint8)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    bad = tmp_path / "reshape.tflite"
    bad.write_bytes(bytes(builder.Output()))
    res = CliRunner().invoke(cli, ["verify", str(bad), "-t", "rpi4", "-d", str(data_npz), "--x", "x_eval",
                                   "--y", "y_eval", "--json"])
    assert res.exit_code == 1, res.output
    checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    acc = checks["accuracy"]
    assert acc["status"] == "fail" and acc["source"] == "measured:litert-xnnpack"
    assert acc["detail"].startswith("not measured: the device runtime litert-xnnpack refused the model")
    assert "failed to prepare" in acc["detail"], "the runtime's own reason"
    assert checks["runtime_lsb_diff"]["status"] == "skip"


def test_data_without_labels_is_measured_but_unverified(tflite_path, data_npz):
    """No labels and no float model: the runtimes are cross-checked, accuracy is not claimed."""
    res = CliRunner().invoke(cli, ["verify", str(tflite_path), "-t", "rpi4", "-d", str(data_npz), "--x", "x",
                                   "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert doc["status"] == "unverified" and checks["accuracy"]["status"] == "skip"
    assert checks["runtime_lsb_diff"]["status"] == "pass"


def test_data_that_does_not_fit_the_model_exits_2(tflite_path, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 9, 8, 1), np.float32))
    res = CliRunner().invoke(cli, ["verify", str(tflite_path), "-t", "rpi4", "-d", str(tmp_path / "d.npz")])
    assert res.exit_code == 2
    assert "(8, 8, 1)" in res.output and res.output.startswith("error: ")


def test_baseline_options_are_exclusive_and_the_report_must_have_accuracy(tflite_path, data_npz, tmp_path):
    both = _verify(tflite_path, data_npz, "rpi4", "--baseline-accuracy", "90", "--baseline", "r.json")
    assert both.exit_code == 2 and "give one baseline, not both" in both.output
    (tmp_path / "r.json").write_text("{}")
    empty = _verify(tflite_path, data_npz, "rpi4", "--baseline", str(tmp_path / "r.json"))
    assert empty.exit_code == 2 and "accuracy.float.top1" in empty.output


def test_the_python_api_returns_objects_and_prints_nothing(tflite_path, data_npz, capfd):
    import edgepipe

    res = edgepipe.verify(tflite_path, "rpi4", data_npz, x_key="x_eval", y_key="y_eval", min_accuracy=50)
    info = edgepipe.inspect(tflite_path, "rpi4")
    assert res.passed and [c.name for c in info.checks] == ["io_dtype", "flash", "ram", "latency", "energy"]
    assert capfd.readouterr() == ("", "")
