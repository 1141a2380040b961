"""Fine-tuning with distillation: skipped, refused, run, stopped early."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.errors import EdgepipeError, InputError
from edgepipe.prune import FinetuneSettings, PruneSettings, finetune, prune_model
from edgepipe.prune.recovery import accuracy


@pytest.fixture(scope="module")
def pruned(digits_model):
    return prune_model(digits_model, PruneSettings(ratio=0.5)).model


def _copy(model):
    from edgepipe.prune.rebuild import rebuild

    return rebuild(model, {})


def test_teacher_is_a_useful_classifier(digits_model, digit_split):
    (_, _), (x_eval, y_eval) = digit_split
    assert accuracy(digits_model, x_eval, y_eval) > 0.8


def test_not_requested_is_reported_as_skipped(pruned, digits_model, digit_split):
    result = finetune(pruned, digits_model, digit_split[0], digit_split[1], PruneSettings())
    assert not result.done and "no recovery was done" in result.reason
    assert result.to_dict()["done"] is False and result.history == ()


def test_requested_without_training_data_is_an_error(pruned, digits_model):
    settings = PruneSettings(finetune={"epochs": 1})
    with pytest.raises(EdgepipeError, match="no training data was given"):
        finetune(pruned, digits_model, None, None, settings)


def test_mismatched_data_is_an_input_error(pruned, digits_model, digit_split):
    (x, y), _ = digit_split
    with pytest.raises(InputError, match="same, non-zero number of samples"):
        finetune(pruned, digits_model, (x, y[:10]), None, FinetuneSettings(epochs=1))


def test_distillation_recovers_accuracy_and_reports_each_epoch(pruned, digits_model, digit_split):
    student = _copy(pruned)
    seen = []
    settings = FinetuneSettings(epochs=4, learning_rate=3e-3, patience=4, temperature=2.0)
    result = finetune(student, digits_model, digit_split[0], digit_split[1], settings,
                      on_epoch=lambda epoch, metrics: seen.append((epoch, metrics)))
    assert result.done and [e for e, _ in seen] == [1, 2, 3, 4]
    assert set(seen[0][1]) >= {"loss", "label_loss", "distill_loss", "eval_accuracy"}
    assert result.history[-1].distill_loss < result.history[0].distill_loss
    assert result.best_eval_accuracy > result.initial_eval_accuracy
    x_eval, y_eval = digit_split[1]
    assert accuracy(student, x_eval, y_eval) == pytest.approx(result.best_eval_accuracy)


def test_early_stopping_restores_the_best_weights(pruned, digits_model, digit_split):
    student = _copy(pruned)
    before = [w.copy() for w in student.get_weights()]
    settings = FinetuneSettings(epochs=6, learning_rate=5.0, patience=2)  # diverges
    result = finetune(student, digits_model, digit_split[0], digit_split[1], settings)
    assert result.stopped_early and len(result.history) == 2 and result.best_epoch == 0
    for old, new in zip(before, student.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_without_teacher_only_labels_are_used(pruned, digit_split):
    result = finetune(_copy(pruned), None, digit_split[0], None, FinetuneSettings(epochs=1))
    assert result.history[0].distill_loss == 0.0 and result.best_epoch is None


def _moving_statistics(model):
    bn = model.get_layer("stem_bn")
    return [np.array(bn.moving_mean), np.array(bn.moving_variance)]


def test_label_free_distillation_trains_in_inference_mode(pruned, digits_model, digit_split):
    """Without labels the student is matched to the teacher as both run on the device: BatchNormalization's
    moving statistics stay as they were (training mode would replace them with batch statistics)."""
    (x, _), _ = digit_split
    student = _copy(pruned)
    before = _moving_statistics(student)
    result = finetune(student, digits_model, (x, None), None, FinetuneSettings(epochs=2))  # no restore
    assert result.label_free and result.settings["inference_mode"] is True and result.history
    for old, new in zip(before, _moving_statistics(student)):
        np.testing.assert_array_equal(old, new)


def test_with_labels_training_mode_stays_the_default(pruned, digits_model, digit_split):
    student = _copy(pruned)
    before = _moving_statistics(student)
    result = finetune(student, digits_model, digit_split[0], None, FinetuneSettings(epochs=1))
    assert result.settings["inference_mode"] is False
    assert not np.array_equal(before[0], _moving_statistics(student)[0])
