"""Which FULLY_CONNECTED granularity and which per-layer precisions each built-in target gets."""

from __future__ import annotations

import pytest

from edgepipe.api import registry
from edgepipe.quantize.granularity import fc_per_tensor, int16_layers_allowed


@pytest.mark.parametrize("target, per_tensor, int16", [
    ("esp32-s3", True, True), ("stm32h7", True, True), ("ethos-u55", True, True),
    ("rpi4", False, True), ("android-arm64", False, True), ("coral-edgetpu", False, False)])
def test_auto_choices_per_target(target, per_tensor, int16):
    profile = registry().get(target).profile
    assert fc_per_tensor(profile, "auto")[0] is per_tensor
    assert int16_layers_allowed(profile)[0] is int16


def test_explicit_setting_wins():
    profile = registry().get("rpi4").profile
    assert fc_per_tensor(profile, "per-tensor") == (True, "quantization.fc_weights: per-tensor")
    assert fc_per_tensor(registry().get("esp32-s3").profile, "per-channel")[0] is False
