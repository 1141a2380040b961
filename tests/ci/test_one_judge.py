"""One judge: build, verify and inspect of one artifact on one target give the same checks, figures and sources.

Every built-in target: the tiny model is built for each, then its model.tflite is
verified (with the build's report as the baseline) and inspected. The checks that
need no data must be identical in all three, to the byte of every figure; verify
must also measure accuracy on the same device kernels as the build.
"""

from __future__ import annotations

import pytest

import edgepipe

FIELDS = ("name", "status", "measured", "budget", "unit", "source")
BUILTIN = ("android-arm64", "coral-edgetpu", "ek-ra6m4", "ek-ra8d1", "esp32-s3", "ethos-u55", "nrf52840",
           "nucleo-l4r5zi", "rpi4", "stm32h7")


@pytest.fixture(scope="module")
def builds(tmp_path_factory, tiny_model_path, data_npz):
    from ep_helpers import write_project

    folder = tmp_path_factory.mktemp("one_judge")
    cfg = write_project(folder, tiny_model_path, data_npz)
    many = edgepipe.build_many(list(BUILTIN), cfg, out=folder / "out", cache=False)
    return {o.target: o.result for o in many.outcomes}


def _rows(checks) -> list[tuple]:
    return [tuple(c[k] for k in FIELDS) for c in (x if isinstance(x, dict) else x.to_dict() for x in checks)]


def test_every_builtin_target_is_covered(builds):
    assert sorted(builds) == sorted(edgepipe.api.registry().names())
    assert all(r is not None for r in builds.values())


@pytest.mark.parametrize("target", BUILTIN)
def test_build_verify_and_inspect_agree(builds, target, data_npz):
    built = builds[target].report.to_dict()
    model = builds[target].artifacts["model.tflite"]
    verified = edgepipe.verify(model, target, data_npz, x_key="x_eval", y_key="y_eval",
                               baseline=builds[target].artifacts["report.json"]).to_dict()
    inspected = [c.to_dict() for c in edgepipe.inspect(model, target).checks]

    static = _rows(inspected)
    assert static == _rows(built["checks"])[: len(static)] == _rows(verified["checks"])[: len(static)]
    assert _rows(verified["checks"]) == _rows(built["checks"]), "accuracy and cross-checks too"
    assert {c[0] for c in static} >= {"io_dtype", "flash", "ram", "latency"}
    assert verified["accuracy"]["runtime"]["name"] == built["accuracy"]["runtime"]["name"]
    assert verified["accuracy"]["quantized"]["top1"] == built["accuracy"]["quantized"]["top1"]
    for section in ("memory", "tflm", "vela"):
        assert verified.get(section) == built.get(section), section
    assert verified["latency"]["target"] == built["latency"]["target"]


def test_tflm_targets_measure_accuracy_on_tflm_with_the_firmware_arena(builds):
    report = builds["esp32-s3"].report.to_dict()
    runtime = report["accuracy"]["runtime"]
    assert runtime["name"] == "tflm" and runtime["reference"] == "litert-reference"
    assert runtime["arena_bytes"] == report["tflm"]["arena_bytes_with_margin"]
    header = (builds["esp32-s3"].out_dir / "model_data.h").read_text()
    assert f"kTensorArenaSize = {-(-runtime['arena_bytes'] // 16) * 16};" in header


def test_inspect_of_a_tflm_target_runs_tflm_for_the_arena(builds):
    """Not the lifetime planner's activation peak: the arena TFLM itself needs."""
    model = builds["stm32h7"].artifacts["model.tflite"]
    res = edgepipe.inspect(model, "stm32h7")
    checks = {c.name: c for c in res.checks}
    assert checks["tflm_arena"].status == "pass" and checks["tflm_arena"].source == "measured:host"
    assert checks["tflm_arena"].measured > res.memory.peak_bytes, "TFLM's own structures are counted"
