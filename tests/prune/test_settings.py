"""Validation messages name the key, the value and what is allowed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edgepipe.errors import ConfigError, UnknownNameError
from edgepipe.prune import PruneSettings, prune_model
from edgepipe.prune.settings import check_layer_names


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_ratio_outside_range_names_key_value_and_range(ratio):
    with pytest.raises(ValidationError, match=rf"ratio={ratio} is outside the allowed range \[0, 1\)"):
        PruneSettings(ratio=ratio)


def test_per_layer_ratio_is_checked_by_name():
    with pytest.raises(ValidationError, match=r"per_layer.conv2=1.2 is outside the allowed range"):
        PruneSettings(per_layer={"conv1": 0.3, "conv2": 1.2})


def test_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match="ration"):
        PruneSettings.model_validate({"ration": 0.5})


def test_prune_first_and_an_explicit_exclude_list_are_exclusive():
    with pytest.raises(ValidationError, match="prune_first and prune.exclude are mutually exclusive"):
        PruneSettings(prune_first=True, exclude=["stem"])


def test_n_must_be_below_m():
    with pytest.raises(ValidationError, match="n=4 must be smaller than m=4"):
        PruneSettings(method="mn", n=4, m=4)


def test_from_dict_raises_a_config_error_with_the_full_key():
    with pytest.raises(ConfigError) as caught:
        PruneSettings.from_dict({"finetune": {"alpha": 2.0}})
    assert str(caught.value).startswith("prune.finetune.alpha: ")


def test_defaults_round_trip_through_to_dict():
    settings = PruneSettings.from_dict({"ratio": 0.25, "finetune": {"epochs": 3}})
    assert PruneSettings.from_dict(settings.to_dict()) == settings
    assert settings.exclude is None and settings.finetune.epochs == 3


def test_unknown_layer_name_lists_close_matches():
    settings = PruneSettings(per_layer={"conv_2": 0.5})
    with pytest.raises(UnknownNameError) as caught:
        check_layer_names(settings, ["conv_1", "conv2", "dense"])
    assert "did you mean" in str(caught.value) and "conv2" in caught.value.close


def test_prune_model_checks_names_against_the_model(residual_model):
    with pytest.raises(UnknownNameError, match="'res_c'"):
        prune_model(residual_model, PruneSettings(exclude=["res_c"]))


def test_prune_model_refuses_the_mn_method(residual_model):
    with pytest.raises(ConfigError, match="apply_mn_sparsity"):
        prune_model(residual_model, PruneSettings(method="mn"))


def test_channel_multiple_must_be_positive(residual_model):
    with pytest.raises(ConfigError, match="channel_multiple"):
        prune_model(residual_model, PruneSettings(), channel_multiple=0)


def test_settings_import_does_not_load_tensorflow():
    """The config loader imports PruneSettings; TensorFlow costs seconds at start-up."""
    import subprocess
    import sys

    code = (
        "import sys; from edgepipe.prune import PruneSettings; PruneSettings(ratio=0.2); "
        "print('keras' in sys.modules or 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
