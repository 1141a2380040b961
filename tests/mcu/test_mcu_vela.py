"""Ethos-U back end: Vela compiles, its reports are read, its silences become failed checks."""

from __future__ import annotations

import pytest

from edgepipe.errors import ConfigError, InputError, UnknownNameError
from edgepipe.runtimes import vela
from edgepipe.tflite.model import read_tflite


@pytest.fixture(scope="module")
def compiled_int8(mcu_models, target, tmp_path_factory):
    return vela.compile_vela(mcu_models["cnn_int8"], target("ethos-u55"), tmp_path_factory.mktemp("vela"),
                             name="cnn_int8")


def test_int8_cnn_compiles_for_ethos_u55_128(compiled_int8, tflite):
    r = compiled_int8
    assert r.accelerator_config == "Ethos_U55_128"
    assert (r.system_config, r.memory_mode) == ("Corstone_300_250MHz", "Shared_Sram")
    assert r.npu_ops > 0 and r.cpu_ops == 0 and r.cpu_fallbacks == ()
    assert r.sram_bytes > 0 and r.flash_bytes > 0
    assert r.inference_time_s > 0 and r.cycles > 0 and r.core_clock_hz == 250e6
    assert r.macs == pytest.approx(sum(l.macs for l in r.layers), rel=0.01)
    assert r.output_path.name == "cnn_int8_vela.tflite"
    assert read_tflite(r.output_path).op_counts == {"CUSTOM:ethos-u": 1}
    assert r.output_bytes == r.output_path.stat().st_size
    assert r.to_dict()["output_path"].endswith("_vela.tflite")


def test_int8_cnn_passes_the_vela_checks(compiled_int8, target):
    checks = {c.name: c for c in vela.vela_checks(compiled_int8, target("ethos-u55"))}
    assert all(c.passed for c in checks.values()), [c.detail for c in checks.values()]
    assert checks["ram"].measured == compiled_int8.sram_bytes
    assert checks["flash"].measured == compiled_int8.output_bytes


def test_float_model_falls_back_to_cpu_and_fails_npu_only(mcu_models, target, tmp_path):
    profile = target("ethos-u55")
    r = vela.compile_vela(mcu_models["cnn_float"], profile, tmp_path, name="cnn_float")
    assert r.npu_ops == 0 and r.cpu_ops > 0
    checks = {c.name: c for c in vela.vela_checks(r, profile)}
    assert checks["npu_only"].status == "fail"
    assert "CONV_2D" in checks["npu_only"].detail and "Float32" in checks["npu_only"].detail
    assert checks["ethos_u_int8"].status == "fail"


def test_sram_over_budget_fails_although_vela_exits_0(mcu_models, target, changed, tmp_path):
    tight = changed(target("ethos-u55"), memory={"ram": 8192})
    r = vela.compile_vela(mcu_models["cnn_int8"], tight, tmp_path)
    ram = next(c for c in vela.vela_checks(r, tight) if c.name == "ram")
    assert r.sram_bytes > 8192 and ram.status == "fail"


def test_unknown_system_config_lists_the_known_ones(mcu_models, target, changed, tmp_path):
    bad = changed(target("ethos-u55"), ethos_u={"system_config": "Ethos_U55_High_End_Embeded"})
    with pytest.raises(UnknownNameError) as err:
        vela.compile_vela(mcu_models["cnn_int8"], bad, tmp_path)
    assert "did you mean Ethos_U55_High_End_Embedded" in str(err.value)
    assert "Ethos_U55_Deep_Embedded" in str(err.value)


@pytest.mark.parametrize("change, error", [
    ({"memory_mode": "Shared"}, UnknownNameError),
    ({"accelerator_config": "ethos-u55-100"}, UnknownNameError),
    ({"memory_mode": None}, ConfigError),
    ({"config_file": "nope.ini"}, ConfigError),
])
def test_bad_ethos_u_settings_are_clear_errors(mcu_models, target, changed, tmp_path, change, error):
    with pytest.raises(error):
        vela.compile_vela(mcu_models["cnn_int8"], changed(target("ethos-u55"), ethos_u=change), tmp_path)


def test_corrupt_model_is_refused_before_vela_segfaults(model_bytes, target, tmp_path):
    with pytest.raises(InputError):
        vela.compile_vela(model_bytes("cnn_int8")[:3000], target("ethos-u55"), tmp_path)


def test_bundled_vela_ini_has_the_profile_configs():
    systems, modes = vela.list_vela_configs()
    assert "Ethos_U55_High_End_Embedded" in systems and "Shared_Sram" in modes
