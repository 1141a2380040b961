"""Recovery after pruning: fine-tuning with knowledge distillation.

The unpruned model is the teacher. The loss is
``alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)``
(Hinton et al.; ``T^2`` keeps the gradient scale independent of T). Models
that end in softmax are handled by taking the log of their probabilities,
which softmax maps back to the same distribution. The teacher runs once over
the training data (no augmentation, inference mode: its outputs do not change).
Early stopping watches the eval accuracy, and the best weights (the pruned
start included, as epoch 0; ties go to the later epoch) are restored, so
fine-tuning never leaves a worse model than it got.

A custom loop with ``tf.GradientTape`` keeps the library silent (no Keras
progress bars) and lets ``on_epoch`` report progress; the optimizer applies
variable constraints after each step, which is how m:n masks survive training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from edgepipe.errors import InputError
from edgepipe.prune.errors import MissingTrainingDataError
from edgepipe.prune.result import to_jsonable
from edgepipe.prune.settings import FinetuneSettings, PruneSettings

Data = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    loss: float
    label_loss: float
    distill_loss: float
    train_accuracy: float
    eval_accuracy: float | None


@dataclass(frozen=True)
class FinetuneResult:
    """What recovery did; ``done=False`` with a ``reason`` when it was skipped."""

    done: bool
    reason: str | None = None
    history: tuple[EpochMetrics, ...] = ()
    initial_eval_accuracy: float | None = None
    best_epoch: int | None = None
    best_eval_accuracy: float | None = None
    stopped_early: bool = False
    settings: dict | None = None
    model: Any = field(default=None, repr=False, compare=False, metadata={"report": False})

    @classmethod
    def skipped(cls, reason: str) -> FinetuneResult:
        return cls(done=False, reason=reason)

    def to_dict(self) -> dict:
        return to_jsonable(self)


def finetune(
    student: keras.Model,
    teacher: keras.Model | None,
    train: Data | None,
    eval: Data | None,
    settings: PruneSettings | FinetuneSettings | None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> FinetuneResult:
    """Train ``student`` in place, distilling from ``teacher`` (None: labels only)."""
    ft = settings.finetune if isinstance(settings, PruneSettings) else settings
    if ft is None:
        return FinetuneResult.skipped("no recovery was done: prune.finetune is not set")
    if train is None:
        raise MissingTrainingDataError()
    x, y = _check_data("training data", student, train)
    evaluation = _check_data("eval data", student, eval) if eval is not None else None
    targets = _teacher_logits(teacher, x, ft.batch_size)
    step = _train_step(student, ft, teacher is not None, x[: ft.batch_size])
    loop = _Loop(student, evaluation, ft)
    rng = np.random.default_rng(ft.seed)
    for epoch in range(1, ft.epochs + 1):
        metrics = _run_epoch(step, (x, y, targets), ft.batch_size, rng)
        row = EpochMetrics(epoch, *metrics, eval_accuracy=loop.evaluate())
        if on_epoch is not None:
            on_epoch(epoch, to_jsonable(row))
        if loop.record(row):
            break
    return loop.finish(ft)


class _Loop:
    """Early stopping on eval accuracy, keeping the best weights seen."""

    def __init__(self, student: keras.Model, evaluation: Data | None, ft: FinetuneSettings):
        self.student, self.evaluation, self.ft = student, evaluation, ft
        self.history: list[EpochMetrics] = []
        self.initial = self.evaluate()
        self.best = (0, self.initial, student.get_weights())
        self.stopped = False

    def evaluate(self) -> float | None:
        if self.evaluation is None:
            return None
        x, y = self.evaluation
        return accuracy(self.student, x, y, self.ft.batch_size)

    def record(self, row: EpochMetrics) -> bool:
        """Keep the row; True when training should stop."""
        self.history.append(row)
        if row.eval_accuracy is None:
            return False
        if row.eval_accuracy >= self.best[1]:  # a tie goes to the longer-trained weights
            self.best = (row.epoch, row.eval_accuracy, self.student.get_weights())
        self.stopped = row.epoch - self.best[0] >= self.ft.patience
        return self.stopped

    def finish(self, ft: FinetuneSettings) -> FinetuneResult:
        best_epoch, best_acc, weights = self.best
        if self.evaluation is not None:
            self.student.set_weights(weights)
        return FinetuneResult(
            done=True,
            history=tuple(self.history),
            initial_eval_accuracy=self.initial,
            best_epoch=best_epoch if self.evaluation is not None else None,
            best_eval_accuracy=best_acc,
            stopped_early=self.stopped,
            settings=ft.model_dump(),
            model=self.student,
        )


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of a single-output classifier."""
    predicted = np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    return float(np.mean(predicted == y))


def _check_data(what: str, model: keras.Model, data) -> Data:
    """(x, y) as float32 and integer class labels (one-hot is accepted)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise InputError(what, "a pair (x, y) of arrays", type(data).__name__)
    x, y = np.asarray(data[0], dtype=np.float32), np.asarray(data[1])
    if len(x) != len(y) or len(x) == 0:
        raise InputError(what, "x and y with the same, non-zero number of samples",
                         f"{len(x)} inputs and {len(y)} labels")
    if len(model.outputs) != 1:
        raise InputError("model", "one output (a classifier)", f"{len(model.outputs)} outputs")
    if y.ndim == 2 and y.shape[1] > 1:
        y = np.argmax(y, axis=1)
    return x, y.reshape(len(y)).astype(np.int32)


def _is_probability(outputs: np.ndarray) -> bool:
    return bool(outputs.min() >= 0 and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3))


def _teacher_logits(teacher, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Teacher logits, computed once: in inference mode they are the same every epoch.

    Log-probabilities stand in for logits (softmax(log p / T) == softmax(z / T))."""
    if teacher is None:
        return np.zeros((len(x), 1), dtype=np.float32)
    out = np.asarray(teacher.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
    return np.log(np.clip(out, 1e-7, 1.0)) if _is_probability(out) else out


def _train_step(student, ft: FinetuneSettings, distill: bool, sample: np.ndarray):
    import tensorflow as tf  # the GradientTape loop needs the TensorFlow backend

    optimizer = keras.optimizers.Adam(ft.learning_rate)
    optimizer.build(student.trainable_variables)
    probabilities = _is_probability(np.asarray(student(sample, training=False)))
    alpha = ft.alpha if distill else 1.0
    temp = ft.temperature

    @tf.function(reduce_retracing=True)
    def step(x, y, target):
        with tf.GradientTape() as tape:
            out = student(x, training=True)
            logits = ops.log(ops.clip(out, 1e-7, 1.0)) if probabilities else out
            label = ops.mean(ops.sparse_categorical_crossentropy(y, logits, from_logits=True))
            kl = _kl(target / temp, logits / temp) * temp**2 if distill else ops.zeros(())
            loss = alpha * label + (1.0 - alpha) * kl + sum(student.losses)
        grads = tape.gradient(loss, student.trainable_variables)
        optimizer.apply(grads, student.trainable_variables)
        hit = ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), ops.cast(y, "int32"))
        return ops.stack([loss, label, kl, ops.mean(ops.cast(hit, "float32"))])

    return step


def _kl(teacher_logits, student_logits):
    """Mean KL(teacher || student) over the batch."""
    log_t = ops.log_softmax(teacher_logits, axis=-1)
    log_s = ops.log_softmax(student_logits, axis=-1)
    return ops.mean(ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1))


def _run_epoch(step, data: tuple[np.ndarray, ...], batch_size: int, rng) -> list[float]:
    """One shuffled pass; sample-weighted means of loss, label, distill, accuracy."""
    order = rng.permutation(len(data[0]))
    totals = np.zeros(4)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        totals += np.asarray(step(*(part[batch] for part in data))) * len(batch)
    return (totals / len(order)).tolist()
