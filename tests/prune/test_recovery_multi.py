"""Fine-tuning that distils every output of a 2-input, 3-output model, with labels on some heads or none.

The model (an 8x8 digit image and four numbers in; class scores, a regression
head and a raw feature map out) is pruned by half, then fine-tuned. Each head
is judged against the unpruned teacher on held-out inputs, with figures
computed here in numpy: 1 - top-1 agreement for the classifier, MSE over the
teacher output's variance for the others.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from edgepipe.data.samples import Samples
from edgepipe.errors import InputError
from edgepipe.prune import FinetuneSettings, PruneSettings, finetune, prune_model

TASKS = {"cls": "classification", "box": "regression", "seg": "raw"}
SETTINGS = FinetuneSettings(epochs=6, learning_rate=2e-3, patience=6, temperature=2.0, batch_size=32)


def _quadrants(x: np.ndarray) -> np.ndarray:
    """Mean intensity of each image quadrant: the regression head's target."""
    return np.stack([x[:, r:r + 4, c:c + 4, 0].mean(axis=(1, 2)) for r in (0, 4) for c in (0, 4)], axis=1)


@pytest.fixture(scope="session")
def heads_data(digits):
    """(train, eval) dicts of inputs as Samples, class ids and quadrant targets."""
    x_tr, y_tr, x_ev, y_ev = digits
    rng = np.random.default_rng(0)
    meta_tr, meta_ev = rng.random((len(x_tr), 4), np.float32), rng.random((len(x_ev), 4), np.float32)
    # the Samples name the inputs in another order than the model: they are matched by name
    train = {"x": Samples([meta_tr, x_tr], ["meta", "image"]), "cls": y_tr, "box": _quadrants(x_tr)}
    ev = {"x": Samples([meta_ev, x_ev], ["meta", "image"]), "cls": y_ev, "box": _quadrants(x_ev)}
    return train, ev


@pytest.fixture(scope="session")
def heads_teacher(heads_data):
    """A trained 2-input, 3-output model with two prunable convolutions and BatchNormalization."""
    from edgepipe.keras_io import import_tensorflow

    import_tensorflow()
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    image, meta = keras.Input((8, 8, 1), name="image"), keras.Input((4,), name="meta")
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(image)
    h = L.ReLU()(L.BatchNormalization(name="bn")(L.Conv2D(16, 3, padding="same", name="hidden")(h)))
    h = L.Conv2D(16, 3, padding="same", activation="relu", name="hidden2")(h)
    seg = L.Conv2D(2, 1, name="seg")(h)
    joined = L.Concatenate(name="join")([L.Flatten(name="flat")(L.MaxPooling2D(name="pool")(h)), meta])
    cls = L.Dense(10, activation="softmax", name="cls")(joined)
    box = L.Dense(4, name="box")(joined)
    model = keras.Model([image, meta], [cls, box, seg], name="heads")
    model.compile("adam", ["sparse_categorical_crossentropy", "mse", None])
    train, _ = heads_data
    x = dict(train["x"].named())
    model.fit([x["image"], x["meta"]], [train["cls"], train["box"]], epochs=10, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def pruned_heads(heads_teacher):
    result = prune_model(heads_teacher, PruneSettings(ratio=0.5))
    assert result.totals.params.after < result.totals.params.before
    return result.model


def _copy(model):
    from edgepipe.prune.rebuild import rebuild

    return rebuild(model, {})


def _outputs(model, x: Samples) -> dict:
    arrays = dict(x.named())
    out = model.predict([arrays["image"], arrays["meta"]], verbose=0, batch_size=256)
    return {"cls": out[0], "box": out[1], "seg": out[2]}


def _errors_vs_teacher(model, teacher, x: Samples) -> dict:
    """Per head, its error against the teacher (0: identical)."""
    got, want = _outputs(model, x), _outputs(teacher, x)
    errs = {"cls": 1.0 - float(np.mean(got["cls"].argmax(-1) == want["cls"].argmax(-1)))}
    for head in ("box", "seg"):
        errs[head] = float(np.mean((got[head] - want[head]) ** 2) / np.var(want[head]))
    return errs


def _assert_every_head_recovers(student, pruned, teacher, x: Samples) -> None:
    """Each head's error against the teacher at most half what it was just after pruning."""
    before, after = _errors_vs_teacher(pruned, teacher, x), _errors_vs_teacher(student, teacher, x)
    for head in TASKS:
        assert after[head] < 0.5 * before[head], (head, before, after)


@pytest.fixture(scope="session")
def labelled_run(pruned_heads, heads_teacher, heads_data):
    """Fine-tuning with labels on the class and box heads (none exist for the raw head)."""
    train, ev = heads_data
    student = _copy(pruned_heads)
    result = finetune(student, heads_teacher, (train["x"], {"cls": train["cls"], "box": train["box"]}),
                      (ev["x"], {"cls": ev["cls"], "box": ev["box"]}), SETTINGS, tasks=TASKS)
    return student, result


@pytest.fixture(scope="session")
def label_free_run(pruned_heads, heads_teacher, heads_data):
    """The same with no labels at all: distillation only, early stopping against the teacher."""
    train, ev = heads_data
    student = _copy(pruned_heads)
    result = finetune(student, heads_teacher, (train["x"], None), (ev["x"], None), SETTINGS, tasks=TASKS)
    return student, result


def test_pruning_moves_every_head_away_from_the_teacher(pruned_heads, heads_teacher, heads_data):
    errs = _errors_vs_teacher(pruned_heads, heads_teacher, heads_data[1]["x"])
    assert errs["cls"] > 0.05 and errs["box"] > 0.05 and errs["seg"] > 0.05, errs


def test_labelled_finetuning_brings_every_head_back_to_the_teacher(labelled_run, pruned_heads, heads_teacher,
                                                                    heads_data):
    student, result = labelled_run
    _assert_every_head_recovers(student, pruned_heads, heads_teacher, heads_data[1]["x"])
    assert result.done and not result.label_free


def test_labelled_plan_distils_each_head_by_its_task(labelled_run):
    _, result = labelled_run
    plans = {p.name: p for p in result.outputs}
    assert (plans["cls"].distill, plans["cls"].labels, plans["cls"].label_weight) == ("kl", True, SETTINGS.alpha)
    assert (plans["box"].distill, plans["box"].labels, plans["box"].scale > 0) == ("mse", True, True)
    assert (plans["seg"].distill, plans["seg"].labels, plans["seg"].distill_weight) == ("mse", False, 1.0)
    last = result.history[-1]
    assert last.outputs["seg"]["label"] is None and last.outputs["seg"]["distill"] > 0
    assert last.eval["cls"]["metric"] == "top1" and last.eval["box"]["against"] == "labels"
    assert last.eval["seg"] == {"metric": "relative_mse", "against": "teacher", "value": pytest.approx(
        last.eval["seg"]["value"])}
    assert result.best_eval_accuracy > result.initial_eval_accuracy, "the class head's eval top-1 recovers"
    doc = result.to_dict()
    assert [o["name"] for o in doc["outputs"]] == ["cls", "box", "seg"] and "monitor" in doc


def test_label_free_finetuning_distils_every_head(label_free_run, pruned_heads, heads_teacher, heads_data):
    student, result = label_free_run
    _assert_every_head_recovers(student, pruned_heads, heads_teacher, heads_data[1]["x"])
    assert result.done and result.label_free and result.to_dict()["label_free"] is True
    assert all(p.label_weight == 0.0 and p.distill_weight == 1.0 for p in result.outputs)
    assert {h.label_loss for h in result.history} == {0.0} and result.history[0].train_accuracy is None


def test_label_free_early_stopping_watches_agreement_and_teacher_mse(label_free_run):
    _, result = label_free_run
    assert result.initial_eval["cls"]["metric"] == "agreement"
    assert {result.best_eval[h]["against"] for h in TASKS} == {"teacher"}
    assert "1 - agreement vs teacher" in result.monitor and "MSE / variance vs teacher" in result.monitor
    best = result.history[result.best_epoch - 1]
    assert best.eval_error == min(h.eval_error for h in result.history)
    assert result.best_eval["cls"]["value"] > result.initial_eval["cls"]["value"]
    assert result.initial_eval_accuracy is None and result.best_eval_accuracy is None, "no labels, no top-1"


def test_label_free_early_stopping_restores_the_pruned_start(pruned_heads, heads_teacher, heads_data):
    train, ev = heads_data
    student = _copy(pruned_heads)
    before = [w.copy() for w in student.get_weights()]
    diverging = FinetuneSettings(epochs=5, learning_rate=20.0, patience=2)
    result = finetune(student, heads_teacher, (train["x"][:256], None), (ev["x"], None), diverging, tasks=TASKS)
    assert result.stopped_early and result.best_epoch == 0 and len(result.history) == 2
    for old, new in zip(before, student.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_several_outputs_need_labels_by_name(pruned_heads, heads_teacher, heads_data):
    train, _ = heads_data
    with pytest.raises(InputError, match="dict of label arrays by output name"):
        finetune(_copy(pruned_heads), heads_teacher, (train["x"], train["cls"]), None, SETTINGS, tasks=TASKS)
    with pytest.raises(InputError, match=r"labels for \['boxes'\]"):
        finetune(_copy(pruned_heads), heads_teacher, (train["x"], {"boxes": train["box"]}), None, SETTINGS)


def test_no_teacher_and_no_labels_is_refused(pruned_heads, heads_data):
    with pytest.raises(InputError, match="a teacher or labels"):
        finetune(_copy(pruned_heads), None, (heads_data[0]["x"], None), None, SETTINGS, tasks=TASKS)


# --- through the build -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def label_free_build(heads_teacher, heads_data, tmp_path_factory):
    """``edgepipe build`` with prune.finetune and representative data only (no train, no eval)."""
    import edgepipe

    folder = tmp_path_factory.mktemp("label-free-recovery")
    heads_teacher.save(folder / "heads.keras")
    x = dict(heads_data[0]["x"].named())
    np.savez(folder / "rep.npz", image=x["image"], meta=x["meta"])
    cfg = {"model": str(folder / "heads.keras"), "data": {"representative": str(folder / "rep.npz")},
           "outputs": {name: {"task": task} for name, task in TASKS.items()},
           "quantization": {"calibration_samples": 800},
           "prune": {"ratio": 0.5, "finetune": {"epochs": 8, "learning_rate": 0.005, "temperature": 2.0}}}
    (folder / "edgepipe.yaml").write_text(yaml.safe_dump(cfg))
    profile = folder / "lenient.yaml"  # half the channels gone: hold the shipped model to a lenient bar
    profile.write_text(yaml.safe_dump({"name": "lenient", "extends": "rpi4",
                                       "accuracy": {"min_agreement": 90, "min_sqnr_db": 6}}))
    return edgepipe.build(str(profile), folder / "edgepipe.yaml", out=folder / "out")


def test_build_recovers_without_labels_from_representative_data(label_free_build):
    doc = label_free_build.report.to_dict()
    rec = doc["prune"]["recovery"]
    assert rec["done"] and rec["label_free"] and rec["history"]
    assert rec["data"]["train"]["role"] == "representative" and rec["data"]["train"]["labelled_outputs"] == []
    assert rec["data"]["train"]["samples"] == 720, "the 800 samples calibration uses, less every 10th"
    stopping = rec["data"]["early_stopping"]
    assert stopping["role"] == "representative (held out)" and stopping["samples"] == 80
    assert "kept out of training" in stopping["source"], "early stopping never watches the reported eval data"
    assert {o["name"]: o["distill"] for o in rec["outputs"]} == {"cls": "kl", "box": "mse", "seg": "mse"}
    assert label_free_build.exit_code == 0, [c.detail for c in label_free_build.report.checks if c.status == "fail"]


def test_build_reports_each_head_closer_to_the_original_after_recovery(label_free_build):
    vs = label_free_build.report.to_dict()["prune"]["vs_original"]
    assert "held out" in vs["data"]
    start, end = vs["float_pruned_recalibrated"], vs["float_pruned_finetuned"]
    assert end["cls"]["agreement"] > start["cls"]["agreement"]
    for head in ("box", "seg"):
        assert end[head]["relative_mse"] < start[head]["relative_mse"], (head, start, end)
    assert label_free_build.report.to_dict()["prune"]["accuracy"]["float_original"] is None, "no labels: no top-1"


def test_a_one_unit_classifier_is_distilled_by_mse(heads_data):
    """KL over one unit is always 0: a sigmoid head would learn nothing from the teacher."""
    import keras

    keras.utils.set_random_seed(5)
    image = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(image)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="hidden")(h)
    teacher = keras.Model(image, keras.layers.Dense(1, activation="sigmoid", name="p")(keras.layers.Flatten()(h)))
    x = dict(heads_data[0]["x"].named())["image"][:256]
    student = prune_model(teacher, PruneSettings(ratio=0.5)).model
    result = finetune(student, teacher, (x, None), None, FinetuneSettings(epochs=2), tasks={"p": "classification"})
    (plan,) = result.outputs
    assert (plan.task, plan.distill, plan.scale > 0) == ("regression", "mse", True) and "one-unit" in plan.note
    assert result.history[-1].distill_loss > 0.0


def test_finetune_without_any_data_is_a_usage_error(tiny_model_path, tmp_path):
    """No data.train and no data.representative (a dynamic-range build needs none): nothing to train on."""
    from click.testing import CliRunner

    from edgepipe.cli import cli

    cfg = tmp_path / "edgepipe.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(tiny_model_path), "quantization": {"scheme": "dynamic"},
                                   "prune": {"ratio": 0.5, "finetune": {"epochs": 1}}}))
    profile = tmp_path / "host.yaml"
    profile.write_text(yaml.safe_dump({"name": "host", "extends": "rpi4", "quantization": {
        "scheme": "dynamic", "input_dtype": "float32", "output_dtype": "float32"}}))
    res = CliRunner().invoke(cli, ["build", "-t", str(profile), "-c", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "no training data and no representative data" in res.output and "data.representative" in res.output
    assert not (tmp_path / "o" / "model.tflite").exists()
