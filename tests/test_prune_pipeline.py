"""Pruning inside the build: prune -> fine-tune -> quantize, and its bad input."""

import json

import pytest
import yaml
from click.testing import CliRunner

import edgepipe
from edgepipe.cli import cli
from edgepipe.errors import ConfigError, UnknownNameError


@pytest.fixture(scope="module")
def pruned_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned")
    return edgepipe.build("stm32h7", example="digits", out=out,
                          overrides={"prune.ratio": 0.5, "prune.finetune.epochs": 3})


def test_pruned_build_is_narrower_and_reports_every_stage(pruned_build):
    rep = pruned_build.report.to_dict()
    p = rep["prune"]
    assert p["enabled"] and p["method"] == "channel"
    assert p["totals"]["params"]["after"] < 0.5 * p["totals"]["params"]["before"]
    assert p["totals"]["macs"]["after"] < p["totals"]["macs"]["before"]
    assert rep["model"]["params"] == p["totals"]["params"]["after"]
    acc = p["accuracy"]
    assert set(acc) >= {"float_original", "float_pruned", "float_pruned_finetuned", "int8_pruned"}
    assert acc["float_pruned_recalibrated"] > acc["float_pruned"], "fresh BN statistics must help"
    assert rep["prune"]["bn_recalibration"]["layers"] == ["bn1", "bn2", "bn3"]
    assert acc["float_pruned_finetuned"] > acc["float_pruned"], "fine-tuning must recover accuracy"
    assert p["recovery"]["done"] and p["recovery"]["history"]
    names = {c.name for c in pruned_build.report.checks}
    assert "accuracy_vs_original" in names


def test_pruned_channel_counts_follow_the_target_multiple(pruned_build):
    layers = pruned_build.report.to_dict()["prune"]["layers"]
    narrowed = [r for r in layers if r["channels_out"]["after"] < r["channels_out"]["before"]]
    assert narrowed, "a 50% prune must narrow some layer"
    for row in narrowed:
        assert row["channels_out"]["after"] % 4 == 0, row  # stm32h7 channel_multiple is 4
    conv1 = next(r for r in layers if r["name"] == "conv1")
    assert conv1["channels_out"]["after"] == conv1["channels_out"]["before"], "first conv is left alone"


def test_finetune_without_training_data_recovers_from_representative_samples(tmp_path, tiny_model_path, data_npz):
    """No data.train: recovery distils the unpruned model on the representative samples, without labels."""
    from ep_helpers import write_project

    cfg = write_project(tmp_path, tiny_model_path, data_npz, prune={"ratio": 0.5, "finetune": {"epochs": 1}})
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-c", str(cfg), "-o", str(tmp_path / "o"), "--json"])
    assert res.exit_code in (0, 1), res.output
    recovery = json.loads(res.output)["prune"]["recovery"]
    assert recovery["done"] and recovery["label_free"]


def test_ratio_outside_range_names_the_key_and_line(tmp_path, tiny_model_path, data_npz):
    from ep_helpers import write_project

    cfg = write_project(tmp_path, tiny_model_path, data_npz, prune={"ratio": 1.5})
    with pytest.raises(ConfigError) as exc:
        edgepipe.build("rpi4", cfg, out=tmp_path / "o")
    assert "prune.ratio" in str(exc.value) and "[0, 1)" in str(exc.value) and "line" in str(exc.value)


def test_unknown_layer_in_per_layer_lists_close_names(tmp_path, tiny_model_path, data_npz):
    from ep_helpers import write_project

    cfg = write_project(tmp_path, tiny_model_path, data_npz, prune={"per_layer": {"con": 0.5}})
    with pytest.raises(UnknownNameError) as exc:
        edgepipe.build("rpi4", cfg, out=tmp_path / "o")
    assert "conv" in str(exc.value)


def test_cli_prune_flags_reach_the_config(tmp_path):
    res = CliRunner().invoke(cli, ["build", "--example", "digits", "-t", "rpi4", "--prune-ratio", "1.5",
                                   "-o", str(tmp_path)])
    assert res.exit_code == 2
    assert "prune.ratio" in res.output and "[0, 1)" in res.output


def test_early_stopping_watches_validation_data_never_the_eval_data(tmp_path, tiny_model_path, data_npz):
    from ep_helpers import write_project

    cfg = write_project(tmp_path, tiny_model_path, data_npz, prune={"ratio": 0.5, "finetune": {"epochs": 1}})
    doc = yaml.safe_load(cfg.read_text())
    doc["data"]["train"] = {"path": str(data_npz), "x": "x_train", "y": "y_train"}
    cfg.write_text(yaml.safe_dump(doc))
    held = edgepipe.build("rpi4", cfg, out=tmp_path / "a").report.to_dict()["prune"]["recovery"]["data"]
    assert held["early_stopping"]["role"] == "train (held out)" and held["early_stopping"]["samples"] == 140
    assert held["train"]["samples"] == 1260, "1400 training samples less every 10th"

    doc["data"]["val"] = {"path": str(data_npz), "x": "x", "y": None}
    cfg.write_text(yaml.safe_dump(doc))
    given = edgepipe.build("rpi4", cfg, out=tmp_path / "b").report.to_dict()["prune"]["recovery"]["data"]
    assert given["early_stopping"]["role"] == "val" and given["train"]["samples"] == 1400
