"""The per-kernel latency model: features, cost tables, calibration, bands, energy, Ethos-U clocks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from edgepipe.config.targets import TargetRegistry
from edgepipe.errors import ConfigError
from edgepipe.estimate import energy_check, estimate_energy, estimate_latency, op_workloads, total_macs
from edgepipe.estimate import calibrate
from edgepipe.estimate.kernels import HERE, UNCHECKED_BAND, families, op_cycles
from edgepipe.estimate.reference_models import PUBLISHED_MACS, reference_model
from edgepipe.estimate.workload import OpWorkload
from edgepipe.units import UnitError, parse_energy, parse_power

REGISTRY = TargetRegistry([])


def profile(name: str):
    return REGISTRY.get(name).profile


def conv_1x1(channels: int, pixels: int = 100) -> OpWorkload:
    """A 1x1 convolution over ``pixels`` positions, ``channels`` in and out."""
    macs = pixels * channels * channels
    return OpWorkload(0, "CONV_2D", "x", float(macs), 0, "int8", True, kernel="conv_1x1", simd_dim=channels,
                      out_elems=pixels * channels)


def per_mac(w: OpWorkload, family: str) -> float:
    return op_cycles(w, families()[family])[0] / w.macs


# --------------------------------------------------------------------------- reference models and features

@pytest.mark.parametrize("name", sorted(PUBLISHED_MACS))
def test_rebuilt_mlperf_models_have_the_published_macs(name):
    assert total_macs(reference_model(name)) == PUBLISHED_MACS[name]


def test_ops_get_the_kernel_class_their_speed_depends_on():
    vww = op_workloads(reference_model("vww"))
    first, dw, pw = vww[0], vww[1], vww[2]
    assert (first.kernel, first.simd_dim, first.patch) == ("conv_input", 27, 48 * 48 * 27)
    assert (dw.kernel, dw.simd_dim, dw.patch) == ("depthwise", 8, 48 * 48 * 8 * 9)
    assert (pw.kernel, pw.simd_dim, pw.patch) == ("conv_1x1", 8, 0)
    assert first.weight_bytes == 8 * 27 + 8 * 4 and first.act_bytes == 96 * 96 * 3 + 48 * 48 * 8
    assert {w.kernel for w in op_workloads(reference_model("ad"))} == {"fully_connected"}


def test_a_channel_count_off_the_simd_width_costs_more_per_mac():
    assert per_mac(conv_1x1(66), "cmsis-nn-dsp") > per_mac(conv_1x1(64), "cmsis-nn-dsp")
    assert per_mac(conv_1x1(20), "cmsis-nn-helium") > 1.3 * per_mac(conv_1x1(32), "cmsis-nn-helium")


def test_narrow_layers_pay_per_output_and_per_op():
    """Requantization is paid per output and dispatch per op: 8 channels cost more per MAC than 64."""
    assert per_mac(conv_1x1(8), "cmsis-nn-dsp") > 1.5 * per_mac(conv_1x1(64), "cmsis-nn-dsp")


def test_depthwise_and_three_channel_first_layers_are_slower_per_mac_than_pointwise():
    vww = op_workloads(reference_model("vww"))
    pointwise = next(w for w in vww if w.kernel == "conv_1x1" and w.simd_dim == 64)
    depthwise = next(w for w in vww if w.kernel == "depthwise" and w.simd_dim == 64)
    assert per_mac(depthwise, "cmsis-nn-dsp") > 2 * per_mac(pointwise, "cmsis-nn-dsp")
    assert per_mac(vww[0], "esp-nn") > 3 * per_mac(pointwise, "esp-nn")


def test_models_run_at_different_mac_rates_on_one_board():
    """One MAC rate per board cannot hold: on the Cortex-M85 the published rates differ 3x between models."""
    p = profile("ek-ra8d1")
    rate = {m: total_macs(reference_model(m)) / estimate_latency(reference_model(m), p).seconds
            for m in ("ic", "vww", "ad")}
    assert rate["ic"] > 1.5 * rate["vww"] and rate["ic"] > 2.5 * rate["ad"]


# --------------------------------------------------------------------------- calibration

def test_fitted_tables_are_what_the_calibration_rows_give():
    committed = yaml.safe_load((HERE / "fitted.yaml").read_text())["families"]
    assert calibrate.fit_all() == committed, "run: python -m edgepipe.estimate.calibrate --write"


def test_every_row_names_a_known_family_core_and_model():
    for row in calibrate.rows():
        fam = families()[row.family]
        assert row.core in fam.cores and row.role in ("fit", "holdout", "check"), row.id
        assert calibrate.estimate_row(row, fam) > 0


@pytest.mark.parametrize("family", ["cmsis-nn-dsp", "esp-nn", "xnnpack-neon", "xnnpack-dotprod"])
def test_held_out_rows_are_within_the_goal(family):
    ratios = calibrate.ratios(families()[family], "holdout")
    assert ratios and all(0.8 <= r <= 1.25 for r in ratios.values()), ratios


def test_every_held_out_row_is_within_its_familys_band_and_the_band_is_from_them():
    for name, fam in families().items():
        for row, ratio in calibrate.ratios(fam, "holdout").items():
            assert fam.band[0] <= ratio <= fam.band[1] + 1e-3, (name, row)
    assert families()["tflm-reference"].band == UNCHECKED_BAND, "no hold-out row: the unchecked band"


def test_a_fit_moves_only_the_parameters_the_family_names():
    fam = families()["cmsis-nn-helium"]
    params = calibrate.fit_family(fam.with_params({}))
    assert set(params) == {"scale", "flash"} and params == fam.params


# --------------------------------------------------------------------------- estimates, bands, profiles

@pytest.mark.parametrize("name", sorted(set(REGISTRY.names()) - {"ethos-u55"}))
def test_every_cpu_profile_estimates_with_its_kernel_family_and_a_band(name):
    est = estimate_latency(reference_model("kws"), profile(name))
    assert est.source == "estimate:cost-model" and est.assumptions["kernel_family"]
    assert est.low_s < est.seconds < est.high_s
    assert {o.kernel for o in est.ops} >= {"conv_input", "depthwise", "conv_1x1"}


def test_a_derived_core_widens_the_band():
    m4 = estimate_latency(reference_model("ic"), profile("nucleo-l4r5zi"))
    m33 = estimate_latency(reference_model("ic"), profile("ek-ra6m4"))
    assert m4.band[1] / m4.band[0] > m33.band[1] / m33.band[0]
    assert "derived" in m4.band_basis and "hold-out" in m33.band_basis


def test_float_models_on_an_int8_calibrated_family_get_the_unchecked_band():
    est = estimate_latency(reference_model("kws", "float32"), profile("ek-ra6m4"))
    assert est.band == UNCHECKED_BAND and "priors" in est.band_basis


def test_the_clock_scales_the_estimate():
    p = profile("ek-ra6m4")
    slow = p.model_copy(update={"device": p.device.model_copy(update={"clock": 100e6})})
    ratio = estimate_latency(reference_model("kws"), slow).seconds / estimate_latency(reference_model("kws"), p).seconds
    assert ratio == pytest.approx(2.0)


def _write(tmp_path: Path, text: str) -> TargetRegistry:
    (tmp_path / "board.yaml").write_text(text)
    return TargetRegistry([tmp_path])


def test_an_unknown_family_or_core_is_refused_when_the_profile_loads(tmp_path):
    with pytest.raises(ConfigError, match="unknown kernel family 'cmsis-nn'.*cmsis-nn-dsp"):
        _write(tmp_path, "extends: ek-ra6m4\ncost_model:\n  kernels: cmsis-nn\n").get("board")
    with pytest.raises(ConfigError, match="'cortex-m0' is not a core.*cortex-m4"):
        _write(tmp_path, "extends: ek-ra6m4\ncost_model:\n  core: cortex-m0\n").get("board")


def test_a_family_without_a_clock_names_the_key():
    p = profile("ek-ra6m4")
    no_clock = p.model_copy(update={"device": p.device.model_copy(update={"clock": None})})
    with pytest.raises(ConfigError, match="device.clock"):
        estimate_latency(reference_model("kws"), no_clock)


# --------------------------------------------------------------------------- energy

def test_energy_is_latency_times_active_power_with_a_band():
    p = profile("ek-ra6m4")
    lat = estimate_latency(reference_model("ic"), p)
    energy = estimate_energy(lat, p)
    assert energy.joules == pytest.approx(lat.seconds * 0.0719)
    assert energy.source == lat.source and energy.power_basis == "measured"
    assert energy.low_j < energy.joules < energy.high_j


def test_an_assumed_power_widens_the_energy_band():
    p = profile("nrf52840")
    lat = estimate_latency(reference_model("kws"), p)
    energy = estimate_energy(lat, p)
    assert energy.band[1] / energy.band[0] == pytest.approx(lat.band[1] / lat.band[0] * 1.5 ** 2)


def test_energy_budget_parses_strictly_and_is_checked(tmp_path):
    reg = _write(tmp_path, "extends: ek-ra6m4\nenergy: 150uJ\n")
    p = reg.get("board").profile
    assert p.energy == pytest.approx(150e-6)
    lat = estimate_latency(reference_model("ic"), p)
    check = energy_check(estimate_energy(lat, p), p)
    assert check.status == "fail" and check.unit == "µJ" and check.budget == pytest.approx(150)
    assert "expected" in check.detail and "mW" in check.detail
    with pytest.raises(ConfigError, match="energy"):
        _write(tmp_path, "extends: ek-ra6m4\nenergy: 150\n").get("board")


def test_no_power_figure_skips_the_energy_check_and_says_why():
    p = profile("ek-ra6m4")
    p = p.model_copy(update={"device": p.device.model_copy(update={"power": None}), "energy": 1e-3})
    lat = estimate_latency(reference_model("ic"), p)
    check = energy_check(estimate_energy(lat, p), p)
    assert check.status == "skip" and "device.power" in check.detail


@pytest.mark.parametrize("text,joules", [("150uJ", 150e-6), ("150 µJ", 150e-6), ("2mJ", 2e-3), ("0.5J", 0.5)])
def test_energies_parse(text, joules):
    assert parse_energy(text) == pytest.approx(joules)


@pytest.mark.parametrize("text", ["150", 150, "2 mWh", "-1uJ", "1e400J"])
def test_bad_energies_are_refused(text):
    with pytest.raises(UnitError):
        parse_energy(text)


def test_powers_parse():
    assert parse_power("41.5mW") == pytest.approx(0.0415) and parse_power("6W") == 6.0
    with pytest.raises(UnitError):
        parse_power("40")


# --------------------------------------------------------------------------- Ethos-U clocks, CLI line

def test_an_npu_clock_that_is_not_the_vela_config_clock_is_refused():
    from edgepipe.runtimes.vela import system_clock, vela_arguments

    p = profile("ethos-u55")
    assert system_clock(p.ethos_u.config_file, p.ethos_u.system_config) == p.ethos_u.npu_clock == 250e6
    assert "--system-config" in vela_arguments(p)
    wrong = p.model_copy(update={"ethos_u": p.ethos_u.model_copy(update={
        "config_file": None, "system_config": "Ethos_U55_High_End_Embedded"})})
    with pytest.raises(ConfigError, match=r"npu_clock.*250 MHz.*500 MHz"):
        vela_arguments(wrong)


def test_the_cli_summary_shows_the_expected_range():
    from edgepipe.render import _estimate_line

    p = profile("ek-ra6m4")
    lat = estimate_latency(reference_model("kws"), p)
    con = Console(width=200, record=True)
    _estimate_line(con, lat.to_dict(), estimate_energy(lat, p).to_dict())
    text = con.export_text()
    assert "expected" in text and "ms–" in text and "mJ" in text and "measured" in text
    lat = replace(lat, band=(0.5, 2.0))
    assert lat.to_dict()["low_s"] == pytest.approx(lat.seconds / 2)
