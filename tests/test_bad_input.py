"""Every bad input: exit 2, one line naming the file, key or tensor, expected and found."""

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from edgepipe.cli import cli


def _build(tmp_path, model, data, **cfg_extra):
    from ep_helpers import write_project

    cfg = write_project(tmp_path, model, data, **cfg_extra)
    return CliRunner().invoke(cli, ["build", "-t", "rpi4", "-c", str(cfg), "-o", str(tmp_path / "out")])


def _npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


def _assert_usage_error(res, *fragments):
    assert res.exit_code == 2, res.output
    err = res.output.strip().splitlines()
    assert err[-1].startswith("error: "), res.output
    for f in fragments:
        assert f in res.output, (f, res.output)
    assert not any("Traceback" in line for line in err)


def test_missing_model_file(tmp_path, data_npz):
    _assert_usage_error(_build(tmp_path, tmp_path / "nope.keras", data_npz), "nope.keras", "no such file")


def test_missing_data_file(tmp_path, tiny_model_path):
    _assert_usage_error(_build(tmp_path, tiny_model_path, tmp_path / "gone.npz"), "gone.npz", "no such file")


def test_data_shape_that_does_not_match_the_model_input(tmp_path, tiny_model_path, digits):
    x = digits[0][:50, :, :, 0]  # channel axis missing
    res = _build(tmp_path, tiny_model_path, _npz(tmp_path, x=x, x_eval=x, y_eval=np.zeros(50, int)))
    _assert_usage_error(res, "(8, 8, 1)", "(8, 8)", "add a trailing channel axis")


def test_missing_array_key_lists_the_keys(tmp_path, tiny_model_path, digits):
    res = _build(tmp_path, tiny_model_path, _npz(tmp_path, inputs=digits[0][:50]))
    _assert_usage_error(res, "an array named 'x'", "inputs")


def test_too_few_representative_samples(tmp_path, tiny_model_path, digits):
    x = digits[0]
    res = _build(tmp_path, tiny_model_path, _npz(tmp_path, x=x[:1], x_eval=x[:5], y_eval=np.zeros(5, int)))
    _assert_usage_error(res, "at least 20 samples", "found 1")


def test_nan_in_data(tmp_path, tiny_model_path, digits):
    x = digits[0][:50].copy()
    x[7, 0, 0, 0] = np.nan
    res = _build(tmp_path, tiny_model_path, _npz(tmp_path, x=x, x_eval=x, y_eval=np.zeros(50, int)))
    _assert_usage_error(res, "NaN or Inf", "first at index 7")


def test_label_count_differs_from_samples(tmp_path, tiny_model_path, digits):
    x = digits[0][:50]
    res = _build(tmp_path, tiny_model_path, _npz(tmp_path, x=x, x_eval=x, y_eval=np.zeros(49, int)))
    _assert_usage_error(res, "50 labels", "found 49")


def test_labels_out_of_range_for_the_model(tmp_path, tiny_model_path, digits):
    x = digits[0][:50]
    y = np.arange(50) % 12
    res = _build(tmp_path, tiny_model_path, _npz(tmp_path, x=x, x_eval=x, y_eval=y))
    _assert_usage_error(res, "class ids in [0, 9]", "the model has 10 outputs", "[0, 11]")


def test_unknown_key_in_project_config(tmp_path, tiny_model_path, data_npz):
    res = _build(tmp_path, tiny_model_path, data_npz, preproces={"scale": 1})
    _assert_usage_error(res, "unknown key 'preproces'", "edgepipe.yaml")


def test_unknown_target_on_build(tmp_path):
    res = CliRunner().invoke(cli, ["build", "-t", "esp32", "--example", "digits", "-o", str(tmp_path)])
    _assert_usage_error(res, "unknown target 'esp32'", "esp32-s3")


def test_not_a_keras_file(tmp_path, data_npz):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"definitely not a zip")
    _assert_usage_error(_build(tmp_path, bad, data_npz), "model.keras", "a loadable Keras model")


def test_failed_input_leaves_the_previous_artifact_alone(tmp_path, tiny_model_path, data_npz):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"good model from yesterday")
    res = _build(tmp_path, tiny_model_path, tmp_path / "missing.npz")
    assert res.exit_code == 2
    assert (out / "model.tflite").read_bytes() == b"good model from yesterday"
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


def test_data_from_a_callable_and_an_image_folder(tmp_path, tiny_model_path, digits, monkeypatch):
    """The two other source kinds a build script uses."""
    from PIL import Image

    import edgepipe

    x_tr, _, x_ev, y_ev = digits
    root = tmp_path / "images"
    for i in range(60):
        d = root / f"{y_ev[i]}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x_ev[i, :, :, 0] * 255).astype(np.uint8)).save(d / f"{i}.png")
    (tmp_path / "mydata.py").write_text(
        "import numpy as np\n"
        f"def calib():\n    return np.load({str(tmp_path / 'c.npy')!r})\n")
    np.save(tmp_path / "c.npy", x_tr[:40] * 255)  # raw pixels, like the images: preprocess.scale applies to both
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = {"model": str(tiny_model_path), "preprocess": {"scale": 1 / 255},
           "data": {"representative": "mydata:calib", "eval": str(root)}}
    (tmp_path / "edgepipe.yaml").write_text(yaml.safe_dump(cfg))
    result = edgepipe.build("rpi4", tmp_path / "edgepipe.yaml", out=tmp_path / "out")
    acc = result.report.to_dict()["accuracy"]
    assert acc["samples"] == 60
    # folder names are the digit labels only where every class is present; accuracy is still real
    assert result.report.inputs["representative"]["source"] == "mydata:calib"
    assert acc["quantized"]["top1"] >= 0


def test_regression_targets_given_as_classification_labels_exit_2_with_the_fix(tiny_build, tmp_path, digits):
    """Float rows that are not one-hot are not class labels (seen on MLPerf Tiny's autoencoder data)."""
    from click.testing import CliRunner

    from edgepipe.cli import cli

    _, _, x_ev, _ = digits
    np.savez(tmp_path / "reg.npz", x=x_ev[:20], y=np.random.default_rng(0).random((20, 10), np.float32))
    res = CliRunner().invoke(cli, ["verify", str(tiny_build.artifacts["model.tflite"]), "-t", "rpi4",
                                   "-d", str(tmp_path / "reg.npz")])
    assert res.exit_code == 2
    assert "pass --task regression" in res.output and len(res.output.strip().splitlines()) == 1


def test_an_internal_error_is_one_line_and_exit_3(tiny_build, monkeypatch):
    """Edgepipe's own bug must never read as exit 1 ("a check failed") or print a traceback."""
    import json

    from click.testing import CliRunner

    import edgepipe.api
    from edgepipe.cli import cli

    def broken(*args, **kwargs):
        raise KeyError("tensor_7")

    monkeypatch.setattr(edgepipe.api, "inspect", broken)
    path = str(tiny_build.artifacts["model.tflite"])
    res = CliRunner().invoke(cli, ["inspect", path, "-t", "rpi4"])
    assert res.exit_code == 3 and res.output.strip().splitlines() == [
        "error: internal error: KeyError: 'tensor_7' (rerun with --debug for the traceback)"]
    as_json = CliRunner().invoke(cli, ["inspect", path, "-t", "rpi4", "--json"])
    assert as_json.exit_code == 3 and json.loads(as_json.stdout)["exit_code"] == 3
    debug = CliRunner().invoke(cli, ["--debug", "inspect", path, "-t", "rpi4"])
    assert isinstance(debug.exception, KeyError)


def test_an_internal_error_inside_a_stage_names_the_stage(tiny_build, data_npz, monkeypatch):
    import edgepipe.verify_tflite
    from click.testing import CliRunner

    from edgepipe.cli import cli

    def broken(ctx, gate):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(edgepipe.verify_tflite, "_accuracy", broken)
    res = CliRunner().invoke(cli, ["verify", str(tiny_build.artifacts["model.tflite"]), "-t", "rpi4",
                                   "-d", str(data_npz), "--x", "x_eval", "--y", "y_eval"])
    assert res.exit_code == 3 and res.output.strip().splitlines() == [
        "error: internal error in the verify stage: ZeroDivisionError: division by zero"]
