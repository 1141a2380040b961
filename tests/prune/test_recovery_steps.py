"""Recovery steps are kept only when they help: BatchNormalization re-calibration and
least-squares reconstruction are judged against the unpruned model on held-out inputs,
and a step that makes agreement worse is undone (the report shows both figures)."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from edgepipe.pipeline import prune_stage
from edgepipe.pipeline.inputs import Split
from edgepipe.pipeline.progress import SILENT
from edgepipe.prune import PruneSettings, prune_model
from edgepipe.prune.gate import Judge, keep_if_better
from edgepipe.prune.reconstruct import reconstruct

TASKS = {"classifier": "classification"}


def _ctx(model, step_x, eval_x, settings=None, labels=None):
    """The parts of a BuildContext the prune stage reads: the steps fit on ``step_x`` (as data.train)."""
    io = SimpleNamespace(outputs=[SimpleNamespace(name="classifier", task="classification")], single=True)

    def split(x, where, lab=None):
        return Split(x, {"classifier": lab} if lab is not None else {}, where, "sha")

    inputs = SimpleNamespace(train=split(step_x, "train", labels), representative=None, val=None,
                             eval=split(eval_x, "held-out digits"), io=io)
    return SimpleNamespace(project=SimpleNamespace(prune=settings or PruneSettings(ratio=0.5), source="test"),
                           model=model, profile=SimpleNamespace(accelerator=SimpleNamespace(channel_multiple=1)),
                           inputs=inputs, progress=SILENT)


@pytest.fixture(scope="session")
def skewed_section(digits_model, digit_split):
    """Recovery steps fitted on brightened images of one digit only: fresh BN statistics from them mislead."""
    (x, y), (x_eval, _) = digit_split
    return prune_stage.run(_ctx(digits_model, x[y == 1][:150] + 0.5, x_eval)).sections["prune"]


@pytest.fixture(scope="session")
def label_free_section(digits_model, digit_split):
    (x, _), (x_eval, _) = digit_split
    return prune_stage.run(_ctx(digits_model, x[:600], x_eval)).sections["prune"]


def test_a_step_that_hurts_agreement_is_reverted_with_both_figures(skewed_section):
    recal = skewed_section["bn_recalibration"]
    decision = recal["decision"]
    assert recal["kept"] is False and decision["decision"] == "reverted" and decision["measured"]
    assert decision["error_after"] > decision["error_before"]
    before, after = decision["before"]["classifier"], decision["after"]["classifier"]
    assert after["agreement"] < before["agreement"], (before, after)
    assert decision["data"] == "held-out digits"
    vs = skewed_section["vs_original"]
    assert vs["float_pruned_recalibrated"] == vs["float_pruned"], "reverting restores every weight"


def test_reconstruction_without_labels_brings_the_pruned_model_back(label_free_section):
    rec = label_free_section["reconstruction"]
    assert rec["done"] and rec["kept"] and set(rec["layers"]) == {"hidden", "classifier"}
    decision = rec["decision"]
    before = decision["before"]["classifier"]["agreement"]
    after = decision["after"]["classifier"]["agreement"]
    assert after > before + 5.0, (before, after)
    for fit in rec["layers"].values():
        assert fit["relative_residual_after"] < 0.5 * fit["relative_residual_before"], fit
    vs = label_free_section["vs_original"]
    assert vs["float_pruned_reconstructed"]["classifier"]["agreement"] == pytest.approx(after)


def test_reconstruction_is_off_by_default_with_labelled_training_data(digits_model, digit_split):
    (x, y), (x_eval, _) = digit_split
    section = prune_stage.run(_ctx(digits_model, x[:300], x_eval, labels=y[:300])).sections["prune"]
    assert section["reconstruction"]["done"] is False
    assert "labelled training data" in section["reconstruction"]["reason"]
    assert "float_pruned_reconstructed" not in {k for k, v in section["vs_original"].items() if v}


def test_reverted_step_restores_the_exact_weights(digits_model, digit_split):
    (x, y), (x_eval, _) = digit_split
    pruned = prune_model(digits_model, PruneSettings(ratio=0.5)).model
    saved = [w.copy() for w in pruned.get_weights()]

    def scramble() -> bool:
        pruned.set_weights([w + 1.0 for w in saved])
        return True

    decision = keep_if_better("scramble", pruned, Judge(digits_model, x_eval, TASKS, "eval"), scramble)
    assert not decision.kept
    for got, want in zip(pruned.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(got, want)


def test_without_held_out_inputs_a_step_is_kept_and_says_it_was_not_measured(digits_model, digit_split):
    (x, _), _ = digit_split
    pruned = prune_model(digits_model, PruneSettings(ratio=0.5))
    refit = lambda: bool(reconstruct(pruned.model, digits_model, x[:200], pruned.kept_indices).layers)  # noqa: E731
    decision = keep_if_better("reconstruction", pruned.model, None, refit)
    assert decision.kept and not decision.measured and "no held-out inputs" in decision.reason


def test_reconstruction_refits_convolutions_and_names_what_it_skips():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="a")(inputs)
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="b")(h)  # 3x3 reads a's
    h = keras.layers.SeparableConv2D(8, 3, padding="same", name="sep")(h)  # reads b's: not refit
    h = keras.layers.Conv2D(8, 1, name="pw")(h)  # pointwise, reads sep's
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.GlobalAveragePooling2D()(h)))
    result = prune_model(model, PruneSettings(ratio=0.5, exclude=["out"]))
    x = np.random.default_rng(0).normal(size=(64, 6, 6, 3)).astype("float32")
    rec = reconstruct(result.model, model, x, result.kept_indices)
    assert set(rec.layers) == {"b", "pw", "out"} and "SeparableConv2D" in rec.skipped["sep"]
    for name, fit in rec.layers.items():
        assert fit["relative_residual_after"] < fit["relative_residual_before"], (name, fit)


# --- fine-tuning runs in a child process -----------------------------------------------------------------


def _child_failure(hook: str, digits_model, digit_split, monkeypatch):
    """The InternalError of a fine-tuning whose child the test hook makes abort ("1") or raise ("raise")."""
    from edgepipe.errors import InternalError
    from edgepipe.prune import FinetuneSettings, finetune
    from edgepipe.prune.child import ABORT_HOOK

    monkeypatch.setenv(ABORT_HOOK, hook)
    student = prune_model(digits_model, PruneSettings(ratio=0.5)).model
    with pytest.raises(InternalError) as caught:
        finetune(student, digits_model, digit_split[0], None, FinetuneSettings(epochs=1))
    return caught.value


def test_a_native_crash_in_fine_tuning_is_an_internal_error_naming_the_workaround(digits_model, digit_split,
                                                                                   monkeypatch):
    from edgepipe.errors import EXIT_INTERNAL

    error = _child_failure("1", digits_model, digit_split, monkeypatch)
    message = str(error)
    assert error.exit_code == EXIT_INTERNAL and "\n" not in message
    assert "SIGABRT" in message and "TF_ENABLE_ONEDNN_OPTS=0" in message


def test_an_error_raised_in_the_fine_tuning_child_is_named_by_its_exception(digits_model, digit_split,
                                                                             monkeypatch):
    """Not the oneDNN advice (that is for native crashes), and not the traceback's last line."""
    message = str(_child_failure("raise", digits_model, digit_split, monkeypatch))
    assert "RuntimeError: the test hook raised in the fine-tuning child" in message and "\n" not in message
    assert "ONEDNN" not in message


def test_a_build_whose_fine_tuning_crashes_exits_3_in_one_line(tmp_path, tiny_model_path, data_npz, monkeypatch):
    from click.testing import CliRunner
    from ep_helpers import write_project

    from edgepipe.cli import cli
    from edgepipe.prune.child import ABORT_HOOK

    monkeypatch.setenv(ABORT_HOOK, "1")
    cfg = write_project(tmp_path, tiny_model_path, data_npz, prune={"ratio": 0.5, "finetune": {"epochs": 1}})
    # --no-cache: an identical build earlier in the session must not replay the prune stage past the crash
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-c", str(cfg), "-o", str(tmp_path / "o"), "--no-cache"])
    assert res.exit_code == 3, res.output
    errors = [line for line in res.output.splitlines() if "fine-tuning crashed" in line]
    assert len(errors) == 1 and "TF_ENABLE_ONEDNN_OPTS=0" in errors[0], res.output



def test_reconstruction_can_be_turned_off_in_the_config(tmp_path, tiny_model_path, data_npz):
    """prune.reconstruct: false skips the least-squares refit even when there are no labels."""
    import yaml

    import edgepipe

    cfg = tmp_path / "edgepipe.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": str(tiny_model_path), "data": {"representative": {"path": str(data_npz), "x": "x_train"}},
        "quantization": {"calibration_samples": 100}, "prune": {"ratio": 0.5, "reconstruct": False}}))
    doc = edgepipe.build("rpi4", cfg, out=tmp_path / "o").report.to_dict()
    assert doc["prune"]["reconstruction"] == {"done": False, "reason": "prune.reconstruct is false"}
