"""Recovery after pruning: fine-tuning with knowledge distillation, for every output.

The unpruned model is the teacher. Each output is trained by its task:

- classification: ``alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T)``
  (Hinton et al.; ``T^2`` keeps the gradient scale independent of T). Outputs
  that end in softmax are handled by taking the log of their probabilities,
  which softmax maps back to the same distribution.
- regression: ``alpha * MSE(labels) + (1 - alpha) * MSE(teacher)``, both divided
  by the variance of the teacher's output on the training data, so a head
  whose values are in the hundreds does not drown one in [0, 1].
- raw (feature maps, anchors, anything without labels): ``MSE(teacher) / variance``.

An output with only one of the two terms gets it with weight 1 (with no labels
at all, alpha is effectively 0: pure distillation), and the model's loss is the
plain sum over outputs, so every head weighs about one unit. The teacher runs
once over the training data (inference mode: its outputs do not change).

Early stopping watches one number on the eval data, the mean over outputs of
an error in [0, ~1]: ``1 - top-1`` where an output has labels, ``1 - agreement``
with the teacher's top-1 where a classifier has none, and MSE divided by the
variance of the labels (or of the teacher's output) for the others. For a
one-output classifier with labels this is exactly "watch eval top-1". The best
weights (the pruned start included, as epoch 0; ties go to the later epoch)
are restored, so fine-tuning never leaves a worse model than it got.

A custom loop with ``tf.GradientTape`` keeps the library silent (no Keras
progress bars) and lets ``on_epoch`` report progress; the optimizer applies
variable constraints after each step, which is how m:n masks survive training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from edgepipe.data.samples import Samples, order_for
from edgepipe.errors import InputError
from edgepipe.keras_io.names import input_names, named_outputs, output_names
from edgepipe.prune.errors import MissingTrainingDataError
from edgepipe.prune.result import to_jsonable
from edgepipe.prune.settings import FinetuneSettings, PruneSettings

#: ``(x, labels)``: x an array (one input) or :class:`~edgepipe.data.samples.Samples`;
#: labels an array (one output), a dict by output name (only the labelled outputs), or None.
Data = tuple[Any, Any]
TASKS = ("classification", "regression", "raw")


@dataclass(frozen=True)
class OutputPlan:
    """How one output is trained: its distillation term, whether labels join in, and their weights."""

    name: str
    task: str
    distill: str | None     # "kl" (classification), "mse" (regression, raw), None: no teacher
    labels: bool            # a label term (CE or MSE) is part of its loss
    label_weight: float
    distill_weight: float
    scale: float | None     # the variance that divides its MSE terms (None: KL needs none)
    note: str | None = None


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    loss: float
    label_loss: float
    distill_loss: float
    train_accuracy: float | None
    eval_accuracy: float | None
    eval_error: float | None = None     # what early stopping watches (lower is better)
    outputs: dict | None = None         # per output: {"label": ..., "distill": ...} training losses
    eval: dict | None = None            # per output: {"metric", "against", "value"} on the eval data


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
    label_free: bool = False
    outputs: tuple[OutputPlan, ...] = ()
    monitor: str | None = None
    initial_eval: dict | None = None
    best_eval: dict | None = None
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
    tasks: Mapping[str, str] | None = None,
) -> FinetuneResult:
    """Train ``student`` in place, distilling every output from ``teacher`` (None: labels only).

    ``tasks``: output name -> classification/regression/raw; outputs not named are
    guessed (see :func:`_guess_task`). ``train`` may carry no labels at all
    (``(x, None)``): recovery is then distillation alone.

    The arguments are checked here (their errors are the user's), then the training
    runs in a child process (:mod:`edgepipe.prune.child`): TensorFlow's oneDNN
    kernels can segfault in training on some models, and a crash there must become
    an error naming the workaround, not a dead build.
    """
    ft = settings.finetune if isinstance(settings, PruneSettings) else settings
    if ft is None:
        return FinetuneResult.skipped("no recovery was done: prune.finetune is not set")
    if train is None:
        raise MissingTrainingDataError()
    _check_arguments(student, teacher, train, eval, ft, tasks)
    from edgepipe.prune.child import finetune_in_child

    return finetune_in_child(student, teacher, train, eval, ft, on_epoch, tasks)


def finetune_here(student: keras.Model, teacher: keras.Model | None, train: Data, eval: Data | None,
                  ft: FinetuneSettings, on_epoch: Callable[[int, dict], None] | None = None,
                  tasks: Mapping[str, str] | None = None) -> FinetuneResult:
    """:func:`finetune`'s training loop, in this process (the child process runs it)."""
    xs, labels, sample, tasks, notes = _setup(student, train, tasks, ft.batch_size)
    targets = _teacher_targets(teacher, xs, tasks, ft.batch_size)
    plans = _plans(tasks, labels, targets, ft, teacher is not None, notes)
    inference = _inference_mode(ft, plans)
    step = _train_step(student, plans, ft, {n: _is_probability(o) for n, o in sample.items()}, inference)
    shapes = {n: o.shape for n, o in sample.items()}
    evaluator = _Evaluator(student, teacher, eval, plans, shapes, ft.batch_size) if eval is not None else None
    loop, rng = _Loop(student, evaluator), np.random.default_rng(ft.seed)
    trained_labels = {p.name: labels[p.name] for p in plans if p.labels}
    for epoch in range(1, ft.epochs + 1):
        totals = _run_epoch(step, xs, trained_labels, targets, ft, rng)
        row = loop.row(epoch, totals, plans)
        if on_epoch is not None:
            on_epoch(epoch, to_jsonable(row))
        if loop.record(row, ft.patience):
            break
    used = ft.model_copy(update={"inference_mode": inference})  # the report says what was done, not "auto"
    return loop.finish(used, plans, label_free=not any(p.labels for p in plans))


def _setup(student: keras.Model, train: Data, tasks: Mapping[str, str] | None, batch_size: int):
    """(inputs, labels by output, a sample of the outputs, tasks, notes), or the user's InputError."""
    xs, labels = _prepare("training data", student, train)
    sample = _named_call(student, [a[:batch_size] for a in xs])
    tasks, notes = _resolve_tasks(tasks, sample, labels)
    labels = {n: _coerce_labels("training data", n, tasks[n], y, sample[n].shape) for n, y in labels.items()}
    return xs, labels, sample, tasks, notes


def _check_arguments(student, teacher, train: Data, eval: Data | None, ft: FinetuneSettings, tasks) -> None:
    """Every error of :func:`finetune_here` that is the caller's, raised in the caller's process."""
    xs, labels, sample, tasks, notes = _setup(student, train, tasks, ft.batch_size)
    targets = _teacher_targets(teacher, [a[:8] for a in xs], tasks, ft.batch_size)
    plans = _plans(tasks, labels, targets, ft, teacher is not None, notes)
    if eval is not None:
        _, eval_labels = _prepare("eval data", student, eval)
        for p in plans:
            if p.name in eval_labels and p.task != "raw":
                _coerce_labels("eval data", p.name, p.task, eval_labels[p.name], sample[p.name].shape)


def result_from_dict(doc: dict, model: keras.Model | None = None) -> FinetuneResult:
    """The inverse of ``FinetuneResult.to_dict()`` (the child process sends its result as JSON)."""
    history = tuple(EpochMetrics(**row) for row in doc.get("history") or ())
    outputs = tuple(OutputPlan(**plan) for plan in doc.get("outputs") or ())
    return FinetuneResult(**{**doc, "history": history, "outputs": outputs, "model": model})


# --- data -----------------------------------------------------------------------------------------------


def _prepare(what: str, model: keras.Model, data) -> tuple[list[np.ndarray], dict]:
    """(the inputs as float32 arrays in the model's input order, labels by output name)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise InputError(what, "a pair (x, labels): labels an array, a dict by output name, or None",
                         type(data).__name__)
    x, y = data
    if isinstance(x, (list, tuple)) and len(model.inputs) > 1:
        x = Samples(list(x), input_names(model))  # Keras style: one array per input, in the model's order
    try:
        xs = order_for(x, input_names(model), f"model {model.name!r}")
    except ValueError as exc:
        raise InputError(what, "one array per model input, named as the model names them", str(exc)) from None
    xs = [np.ascontiguousarray(a, dtype=np.float32) for a in xs]
    if len(xs[0]) == 0:
        raise InputError(what, "x and y with the same, non-zero number of samples", "no samples")
    labels = _labels_by_name(what, model, y)
    for name, lab in labels.items():
        if len(lab) != len(xs[0]):
            raise InputError(what, "x and y with the same, non-zero number of samples",
                             f"{len(xs[0])} inputs and {len(lab)} labels for output {name!r}")
    return xs, labels


def _labels_by_name(what: str, model: keras.Model, y) -> dict:
    """Labels keyed by output name: a dict as given, the one array of a one-output model, or none."""
    names = output_names(model)
    if y is None:
        return {}
    if isinstance(y, Mapping):
        unknown = sorted(set(y) - set(names))
        if unknown:
            raise InputError(f"{what} labels", f"labels named after the model's outputs {names}",
                             f"labels for {unknown}", "key each label array by its output's name")
        return {n: np.asarray(v) for n, v in y.items() if v is not None}
    if len(names) != 1:
        raise InputError(f"{what} labels", f"a dict of label arrays by output name (the model has outputs {names})",
                         "one array", "pass labels as {output_name: array}")
    return {names[0]: np.asarray(y)}


def _coerce_labels(what: str, name: str, task: str, y: np.ndarray, out_shape: tuple) -> np.ndarray:
    """Class ids (one-hot accepted) for a classifier, float targets shaped like the output for regression."""
    if task == "raw":
        return y  # never trained on: a raw output is distilled only (its plan says so)
    if task == "classification":
        if y.shape[1:] == tuple(out_shape[1:]) and out_shape[-1] > 1:
            y = np.argmax(y, axis=-1)
        want, y = tuple(out_shape[1:-1]), y.astype(np.int32)
    else:
        want, y = tuple(out_shape[1:]), y.astype(np.float32)
    if y.size != len(y) * int(np.prod(want, dtype=np.int64)):
        kind = "class ids" if task == "classification" else "targets"
        raise InputError(f"{what} labels for output {name!r}", f"{kind} of shape (N, {', '.join(map(str, want))})"
                         .replace(", )", ")"), f"shape {y.shape}")
    return y.reshape((len(y), *want))


def _resolve_tasks(tasks: Mapping[str, str] | None, sample: dict, labels: dict) -> tuple[dict, dict]:
    """(every output's task as trained, notes by output): as given, else guessed; unknown names and
    tasks are refused. A one-unit classifier (a sigmoid) is trained as a regression head: KL over one
    unit is always 0, so it would learn nothing from the teacher."""
    given = dict(tasks or {})
    for name, task in given.items():
        if name not in sample:
            raise InputError("tasks", f"output names of the model {list(sample)}", repr(name))
        if task not in TASKS:
            raise InputError(f"tasks[{name!r}]", f"one of {list(TASKS)}", repr(task))
    out = {n: given.get(n) or _guess_task(n, sample, labels) for n in sample}
    one_unit = [n for n, t in out.items() if t == "classification" and sample[n].shape[-1] == 1]
    notes = {n: "a one-unit classifier is matched by MSE (KL over one unit is always 0)" for n in one_unit}
    return {n: "regression" if n in one_unit else t for n, t in out.items()}, notes


def _guess_task(name: str, sample: dict, labels: dict) -> str:
    """A one-output model is a classifier (as before); otherwise softmax outputs classify,
    labelled ones regress, and the rest are raw."""
    if len(sample) == 1 or _is_probability(sample[name]):
        return "classification"
    return "regression" if name in labels else "raw"


def _is_probability(outputs) -> bool:
    outputs = np.asarray(outputs)
    return bool(outputs.min() >= 0 and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3))


def _feed(xs: list):
    """What a Keras model is called with: the one array, or the list in input order."""
    return xs[0] if len(xs) == 1 else list(xs)


def _named_call(model: keras.Model, xs: list) -> dict[str, np.ndarray]:
    """One direct call in inference mode (a few samples: what each output looks like)."""
    out = named_outputs(model, model(_feed(xs), training=False))
    return {n: np.asarray(o, dtype=np.float32) for n, o in out.items()}


def predict_named(model: keras.Model, x, batch_size: int = 256) -> dict[str, np.ndarray]:
    """``model``'s outputs on ``x`` (an array or Samples, matched to its inputs by name), by output name."""
    xs = x if isinstance(x, list) else order_for(x, input_names(model), f"model {model.name!r}")
    out = model.predict(_feed([np.asarray(a, np.float32) for a in xs]), batch_size=batch_size, verbose=0)
    return {n: np.asarray(o, dtype=np.float32) for n, o in named_outputs(model, out).items()}


def _teacher_targets(teacher, xs: list, tasks: dict, batch_size: int) -> dict[str, np.ndarray]:
    """The teacher's outputs on the training data, once; a classifier's probabilities as log-probabilities
    (softmax(log p / T) == softmax(z / T), so they stand in for logits)."""
    if teacher is None:
        return {}
    out = predict_named(teacher, xs, batch_size)
    if sorted(out) != sorted(tasks):
        raise InputError("teacher", f"the student's outputs {sorted(tasks)}", f"outputs {sorted(out)}",
                         "distil from the model the student was pruned from")
    logs = {n for n, o in out.items() if tasks[n] == "classification" and _is_probability(o)}
    return {n: np.log(np.clip(o, 1e-7, 1.0)) if n in logs else o for n, o in out.items()}


# --- the loss -------------------------------------------------------------------------------------------


def _plans(tasks: dict, labels: dict, targets: dict, ft: FinetuneSettings, distill: bool,
           notes: dict) -> tuple[OutputPlan, ...]:
    """Each output's loss terms and weights (see the module docstring)."""
    plans = tuple(_plan(n, tasks[n], labels.get(n), targets.get(n), ft.alpha, distill, notes.get(n)) for n in tasks)
    if not any(p.label_weight or p.distill_weight for p in plans):
        raise InputError("fine-tuning", "a teacher or labels for at least one output", "neither",
                         "pass the unpruned model as the teacher, or labels")
    return plans


def _plan(name: str, task: str, y, target, alpha: float, distill: bool, note: str | None) -> OutputPlan:
    """Alpha splits an output's weight only when it has both terms; alone, either gets 1 (so with no
    labels at all alpha is effectively 0, and every head weighs about one unit in the sum)."""
    kind = None if not distill else ("kl" if task == "classification" else "mse")
    use_labels = y is not None and task != "raw"
    if y is not None and task == "raw":
        note = "labels ignored: a raw output is only distilled"
    if not kind and not use_labels:
        note = "not trained: no teacher and no labels"
    lw = (alpha if kind else 1.0) if use_labels else 0.0
    dw = (1.0 - alpha if use_labels else 1.0) if kind else 0.0
    scale = None
    if task != "classification" and (kind or use_labels):
        var = float(np.var(target if kind else y))
        scale = var if var > 1e-12 else 1.0  # a constant head is matched in absolute terms
    return OutputPlan(name, task, kind, use_labels, lw, dw, scale, note)


def _inference_mode(ft: FinetuneSettings, plans: tuple[OutputPlan, ...]) -> bool:
    """Train in inference mode as set, else exactly when no output has labels (distillation alone)."""
    return (not any(p.labels for p in plans)) if ft.inference_mode is None else ft.inference_mode


def _train_step(student, plans: tuple[OutputPlan, ...], ft: FinetuneSettings, probabilities: dict,
                inference: bool = False):
    """One optimizer step; returns [loss, label, distill, accuracy, then label and distill per output].
    ``inference``: BatchNormalization and Dropout run as in inference (see ``inference_mode``)."""
    import tensorflow as tf  # the GradientTape loop needs the TensorFlow backend

    optimizer = keras.optimizers.Adam(ft.learning_rate)
    optimizer.build(student.trainable_variables)

    @tf.function(reduce_retracing=True)
    def step(x, y, target):
        with tf.GradientTape() as tape:
            out = named_outputs(student, student(x, training=not inference))
            terms = [_terms(p, out[p.name], y.get(p.name), target.get(p.name), ft.temperature,
                            probabilities[p.name]) for p in plans]
            loss = sum(p.label_weight * t[0] + p.distill_weight * t[1] for p, t in zip(plans, terms))
            loss = loss + sum(student.losses)
        grads = tape.gradient(loss, student.trainable_variables)
        optimizer.apply(grads, student.trainable_variables)
        hits = [t[2] for p, t in zip(plans, terms) if p.labels and p.task == "classification"]
        acc = sum(hits) / len(hits) if hits else ops.zeros(())
        flat = [v for t in terms for v in t[:2]]
        return ops.stack([loss, sum(t[0] for t in terms), sum(t[1] for t in terms), acc, *flat])

    return step


def _terms(plan: OutputPlan, out, y, target, temp: float, probability: bool):
    """(label term, distillation term, top-1 on the labels) of one output, unweighted."""
    zero = ops.zeros(())
    if plan.task == "classification":
        logits = ops.log(ops.clip(out, 1e-7, 1.0)) if probability else out
        label = ops.mean(ops.sparse_categorical_crossentropy(y, logits, from_logits=True)) if plan.labels else zero
        kl = _kl(target / temp, logits / temp) * temp**2 if plan.distill else zero
        hit = zero
        if plan.labels:
            hit = ops.mean(ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"),
                                              ops.cast(y, "int32")), "float32"))
        return label, kl, hit
    label = ops.mean(ops.square(out - y)) / plan.scale if plan.labels else zero
    mse = ops.mean(ops.square(out - target)) / plan.scale if plan.distill else zero
    return label, mse, zero


def _kl(teacher_logits, student_logits):
    """Mean KL(teacher || student) over the batch."""
    log_t = ops.log_softmax(teacher_logits, axis=-1)
    log_s = ops.log_softmax(student_logits, axis=-1)
    return ops.mean(ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1))


def _run_epoch(step, xs: list, labels: dict, targets: dict, ft: FinetuneSettings, rng) -> np.ndarray:
    """One shuffled pass; sample-weighted means of what ``step`` returns."""
    order = rng.permutation(len(xs[0]))
    totals = None
    for start in range(0, len(order), ft.batch_size):
        batch = order[start : start + ft.batch_size]
        got = np.asarray(step(_feed([a[batch] for a in xs]), {n: v[batch] for n, v in labels.items()},
                              {n: v[batch] for n, v in targets.items()})) * len(batch)
        totals = got if totals is None else totals + got
    return totals / len(order)


# --- evaluation and early stopping ----------------------------------------------------------------------


def figure(task: str, out: np.ndarray, ref: np.ndarray, against: str) -> dict:
    """How close ``out`` is to ``ref`` (labels or a reference model's output), as one number.

    Classification: top-1 (``against="labels"``, ``ref`` class ids) or top-1
    agreement with the reference's class; otherwise MSE divided by the
    variance of ``ref`` (0: equal; 1: no better than predicting its mean),
    which is also how a one-unit classifier is judged (its argmax never changes).
    """
    if task == "classification" and out.shape[-1] > 1:
        ids = ref if against == "labels" else np.argmax(ref, axis=-1)
        value = float(np.mean(np.argmax(out, axis=-1) == np.asarray(ids).reshape(out.shape[:-1])))
        return {"metric": "top1" if against == "labels" else "agreement", "against": against, "value": value}
    ref = np.asarray(ref, np.float32).reshape(out.shape)
    var = float(np.var(ref))
    value = float(np.mean(np.square(out - ref)) / (var if var > 1e-12 else 1.0))
    return {"metric": "relative_mse", "against": against, "value": value}


def error_of(fig: dict) -> float:
    """A figure as an error to minimise: 1 - top-1/agreement, or the relative MSE itself."""
    return fig["value"] if fig["metric"] == "relative_mse" else 1.0 - fig["value"]


def agreement(outputs: dict, reference: dict, tasks: Mapping[str, str]) -> dict:
    """Per output, how closely ``outputs`` follow a reference model's (both by output name), needing
    no labels: ``{"agreement": percent}`` for a classifier, ``{"relative_mse": value}`` for the others."""
    figs = {n: figure(tasks.get(n, "raw"), outputs[n], reference[n], "reference") for n in reference}
    return {n: {"agreement": 100.0 * f["value"]} if f["metric"] == "agreement" else {"relative_mse": f["value"]}
            for n, f in figs.items()}


class _Evaluator:
    """The student's figure per output on the eval data, against labels where it has them, else the teacher."""

    def __init__(self, student, teacher, data: Data, plans: tuple[OutputPlan, ...], shapes: dict,
                 batch_size: int):
        self.student, self.batch_size = student, batch_size
        self.xs, labels = _prepare("eval data", student, data)
        self.refs = {p.name: (p.task, _coerce_labels("eval data", p.name, p.task, labels[p.name], shapes[p.name]),
                              "labels") for p in plans if p.name in labels and p.task != "raw"}
        if teacher is not None and len(self.refs) < len(plans):  # the teacher's outputs, once
            teacher_out = predict_named(teacher, self.xs, batch_size)
            self.refs.update({p.name: (p.task, teacher_out[p.name], "teacher") for p in plans
                              if p.name not in self.refs})

    def describe(self) -> str:
        """What early stopping watches, in words (the report's ``monitor``)."""
        def error(task: str, against: str) -> str:
            if task != "classification":
                return "MSE / variance"
            return "1 - top-1" if against == "labels" else "1 - agreement"

        parts = [f"{n}: {error(t, a)} vs {a}" for n, (t, _, a) in self.refs.items()]
        return "mean eval error over outputs (" + "; ".join(parts) + ")"

    def __call__(self) -> tuple[dict, float, float | None]:
        """(figures by output, their mean error, mean top-1 of the labelled classifiers or None)."""
        out = predict_named(self.student, self.xs, self.batch_size)
        figs = {n: figure(t, out[n], ref, a) for n, (t, ref, a) in self.refs.items()}
        top1 = [f["value"] for f in figs.values() if f["metric"] == "top1"]
        return figs, float(np.mean([error_of(f) for f in figs.values()])), (float(np.mean(top1)) if top1 else None)


class _Loop:
    """Early stopping on the eval error, keeping the best weights seen (the start is epoch 0)."""

    def __init__(self, student: keras.Model, evaluator: _Evaluator | None):
        self.student = student
        self.evaluator = evaluator if evaluator is not None and evaluator.refs else None
        self.history: list[EpochMetrics] = []
        self.initial = self.evaluator() if self.evaluator else (None, None, None)
        self.best = (0, self.initial, student.get_weights())
        self.stopped = False

    def row(self, epoch: int, totals: np.ndarray, plans: tuple[OutputPlan, ...]) -> EpochMetrics:
        figs, err, top1 = self.evaluator() if self.evaluator else (None, None, None)
        per = {p.name: {"label": float(totals[4 + 2 * i]) if p.labels else None,
                        "distill": float(totals[5 + 2 * i]) if p.distill else None} for i, p in enumerate(plans)}
        trained_acc = any(p.labels and p.task == "classification" for p in plans)
        return EpochMetrics(epoch, float(totals[0]), float(totals[1]), float(totals[2]),
                            float(totals[3]) if trained_acc else None, top1, err, per, figs)

    def record(self, row: EpochMetrics, patience: int) -> bool:
        """Keep the row; True when training should stop."""
        self.history.append(row)
        if row.eval_error is None:
            return False
        if row.eval_error <= self.best[1][1]:  # a tie goes to the longer-trained weights
            self.best = (row.epoch, (row.eval, row.eval_error, row.eval_accuracy), self.student.get_weights())
        self.stopped = row.epoch - self.best[0] >= patience
        return self.stopped

    def finish(self, ft: FinetuneSettings, plans: tuple[OutputPlan, ...], label_free: bool) -> FinetuneResult:
        best_epoch, (best_figs, _, best_top1), weights = self.best
        if self.evaluator is not None:
            self.student.set_weights(weights)
        return FinetuneResult(
            done=True, history=tuple(self.history), initial_eval_accuracy=self.initial[2],
            best_epoch=best_epoch if self.evaluator is not None else None, best_eval_accuracy=best_top1,
            stopped_early=self.stopped, settings=ft.model_dump(), label_free=label_free, outputs=plans,
            monitor=self.evaluator.describe() if self.evaluator else None,
            initial_eval=self.initial[0], best_eval=best_figs, model=self.student)


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of a single-output classifier."""
    predicted = np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    return float(np.mean(predicted == y))
