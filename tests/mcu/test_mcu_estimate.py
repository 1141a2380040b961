"""Latency estimates: MAC counts, the kernel tables and the rate roofline, Vela's figures, sources."""

from __future__ import annotations

import pytest

from edgepipe.config.schema import CostModel
from edgepipe.errors import ConfigError
from edgepipe.estimate import cost_model_latency, estimate_latency, latency_check, op_workloads, total_macs
from edgepipe.runtimes import vela

CPU_TARGETS = ("stm32h7", "esp32-s3", "nrf52840", "rpi4", "android-arm64", "coral-edgetpu")


def test_conv_macs_are_counted_exactly(tflite):
    loads = {w.op: w for w in op_workloads(tflite("cnn_int8")) if w.exact}
    assert loads["CONV_2D"].macs in (32 * 32 * 8 * 3 * 3 * 3, 16 * 16 * 8 * 8)
    assert loads["DEPTHWISE_CONV_2D"].macs == 32 * 32 * 8 * 3 * 3
    assert loads["FULLY_CONNECTED"].macs == 8 * 8 * 8 * 10
    assert loads["MAX_POOL_2D"].macs == 16 * 16 * 8 * 2 * 2


def test_macs_agree_with_vela_per_layer(mcu_models, tflite, target, tmp_path):
    r = vela.compile_vela(mcu_models["cnn_int8"], target("ethos-u55"), tmp_path)
    vela_convs = sorted(l.macs for l in r.layers if l.npu_op in ("Conv2D", "DepthwiseConv2D"))
    ours = sorted(int(w.macs) for w in op_workloads(tflite("cnn_int8"))
                  if w.op in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert ours == vela_convs


@pytest.mark.parametrize("name", CPU_TARGETS)
def test_cpu_estimate_is_positive_and_grows_with_macs(tflite, target, name):
    profile = target(name)
    small = estimate_latency(tflite("cnn_int8"), profile)
    wide = estimate_latency(tflite("cnn_wide_int8"), profile)
    assert small.source == "estimate:cost-model" and all(o.source == small.source for o in small.ops)
    assert 0 < small.seconds < wide.seconds
    assert len(small.ops) == len(tflite("cnn_int8").operators)
    assert latency_check(small, profile).status == "pass"


def test_compute_bound_time_scales_with_macs(tflite):
    cm = CostModel(int8_macs_per_second=1e8, float_macs_per_second=1e7)
    small, wide = tflite("cnn_int8"), tflite("cnn_wide_int8")
    ratio = cost_model_latency(wide, cm).seconds / cost_model_latency(small, cm).seconds
    assert total_macs(wide) / total_macs(small) > 2
    assert ratio == pytest.approx(sum(w.macs for w in op_workloads(wide)) / sum(w.macs for w in op_workloads(small)))


def test_float_ops_use_the_float_costs(tflite, target):
    profile = target("stm32h7")
    as_float = estimate_latency(tflite("cnn_float"), profile)
    assert as_float.seconds > estimate_latency(tflite("cnn_int8"), profile).seconds
    assert as_float.band == (0.5 / 1.5, 2.0 * 1.5), "float kernels were not measured: the unchecked band, widened"


def test_missing_rate_is_a_config_error_naming_the_key(tflite):
    with pytest.raises(ConfigError, match="float_macs_per_second"):
        cost_model_latency(tflite("cnn_float"), CostModel(int8_macs_per_second=1e8), "board.yaml")


def test_over_budget_names_the_slowest_op(tflite, target, changed):
    slow = changed(target("nrf52840"), device={"clock": 1e5})
    slow = slow.model_copy(update={"latency": 0.01})
    check = latency_check(estimate_latency(tflite("cnn_int8"), slow), slow)
    assert check.status == "fail" and "CONV_2D" in check.detail


def test_ethos_u_estimate_comes_from_vela(tflite, target):
    est = estimate_latency(tflite("cnn_int8"), target("ethos-u55"))
    assert est.source == "estimate:vela" and est.runtime == "ethos-u"
    assert est.seconds > 0 and {o.source for o in est.ops} == {"estimate:vela"}
    assert est.assumptions["npu_clock_hz"] == target("ethos-u55").ethos_u.npu_clock == 250e6
    assert est.low_s < est.seconds < est.high_s


def test_ethos_u_cpu_fallback_ops_are_costed_by_the_cost_model(tflite, target):
    est = estimate_latency(tflite("cnn_float"), target("ethos-u55"))
    assert {o.source for o in est.ops} == {"estimate:cost-model"}
    assert est.seconds > 0 and "CPU-fallback" in est.detail
