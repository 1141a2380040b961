"""Structured pruning (and optional fine-tuning) before quantization.

Runs only when the project config has a ``prune:`` section. The report's
``prune`` section records per-layer channels, params and MACs before and
after, what recovery did (on which data, and whether label-free), and, at
each stage (float original, pruned, recalibrated, reconstructed, fine-tuned),
top-1 where there are labels (``accuracy``) and every output's closeness to the
original float model, which needs none (``vs_original``). Re-calibration and
reconstruction are kept only if they bring the model closer to the original on
held-out inputs (``edgepipe/prune/gate.py``); their sections say which, with both figures. The int8 figure comes from
the verify stage, and :func:`check_against_original` holds it to
``max_drop`` against the *original* float model, which is what the user
shipped before.
"""

from __future__ import annotations

import numpy as np

from edgepipe.checks import Check
from edgepipe.errors import ConfigError
from edgepipe.pipeline.context import BuildContext
from edgepipe.pipeline.outcome import StageOutcome


def run(ctx: BuildContext) -> StageOutcome:
    """The pruned (and recovered) Keras model for the quantize stage, and the report's ``prune`` section."""
    settings = ctx.project.prune
    if settings is None:
        return StageOutcome(sections={"prune": {"enabled": False}})
    _check_recovery_data(ctx, settings)
    from edgepipe.prune import apply_mn_sparsity, prune_model
    from edgepipe.prune.sensitivity import sensitivity_inputs

    original = ctx.model
    if settings.method == "channel":
        # the target's latency model prices prune.target latency; channel_multiple rounds every width
        result = prune_model(original, settings, ctx.profile.accelerator.channel_multiple,
                             data=sensitivity_inputs(ctx.inputs), profile=ctx.profile,
                             reconstruct=_wants_reconstruction(ctx)[0])
    else:
        result = apply_mn_sparsity(original, settings)
    measure = _Measure(ctx, original)
    measure("float_pruned", result.model)
    steps = {}
    if settings.method == "channel":
        judge, step_x = _held_out(ctx, original)
        steps["bn_recalibration"] = _recalibrate(result.model, step_x, judge)
        measure("float_pruned_recalibrated", result.model if steps["bn_recalibration"] else None)
        steps["reconstruction"] = _reconstruct(ctx, result, original, step_x, judge)
        measure("float_pruned_reconstructed", result.model if steps["reconstruction"].get("layers") else None)
    recovery = _recover(ctx, result.model, original, settings)
    measure("float_pruned_finetuned", result.model if recovery["done"] else None)
    section = {"enabled": True, **result.to_dict(), "bn_recalibration": steps.get("bn_recalibration"), **steps,
               "recovery": recovery, "accuracy": measure.accuracy, "vs_original": measure.vs_original}
    return StageOutcome(sections={"prune": section}, keras_model=result.model)


def _check_recovery_data(ctx: BuildContext, settings) -> None:
    """Fine-tuning needs inputs to train on: labelled training data, or else the representative
    data (then it is distillation from the unpruned model alone, no labels needed)."""
    inputs = ctx.inputs
    if settings.finetune is not None and inputs.train is None and inputs.representative is None:
        raise ConfigError(f"{ctx.project.source} (prune.finetune)",
                          "fine-tuning was requested but there is no training data and no representative data",
                          "set data.train (labelled) or data.representative (label-free distillation) in "
                          "edgepipe.yaml or pass --train-data/--rep-data, or remove prune.finetune")


def _held_out(ctx: BuildContext, original):
    """(a :class:`~edgepipe.prune.gate.Judge` on inputs the recovery steps do not see, or None;
    the inputs the steps use). The eval data when there is some; else, when the steps use the
    representative data, every 4th of its samples is set aside for judging them."""
    from edgepipe.prune.gate import Judge

    inputs = ctx.inputs
    tasks = {o.name: o.task for o in inputs.io.outputs}
    source = inputs.train or inputs.representative
    step_x = source.x if source is not None else None
    if inputs.eval is not None:
        return Judge(original, inputs.eval.x, tasks, inputs.eval.where), step_x
    rep = inputs.representative
    if rep is None or len(rep.x) < 32:
        return None, step_x
    if source is not rep:  # the steps train on data.train: all representative samples are unseen
        return Judge(original, rep.x, tasks, rep.where), step_x
    held = np.arange(len(rep.x)) % 4 == 3
    where = f"{rep.where} (every 4th sample, {int(held.sum())}, held out from the recovery steps)"
    return Judge(original, rep.x[np.flatnonzero(held)], tasks, where), rep.x[np.flatnonzero(~held)]


def _recalibrate(model, x, judge) -> dict | None:
    """Fresh BatchNormalization statistics from unlabeled data (train, else representative),
    kept only if they bring the model closer to the original on held-out inputs."""
    from edgepipe.prune.gate import keep_if_better
    from edgepipe.prune.recalibrate import recalibrate_batchnorm

    if x is None:
        return None
    done = []

    def step() -> bool:
        done.append(recalibrate_batchnorm(model, x))
        return bool(done[0].layers)

    decision = keep_if_better("bn_recalibration", model, judge, step)
    return {**done[0].to_dict(), **_decided(decision)} if done[0].layers else None


def _reconstruct(ctx: BuildContext, result, original, x, judge) -> dict:
    """Least-squares refit of the layers that read pruned channels (reconstruct.py), kept only if it
    helps on held-out inputs. ``prune.reconstruct`` (unset: on when there is no labelled training data)."""
    from edgepipe.prune.gate import keep_if_better
    from edgepipe.prune.reconstruct import reconstruct

    wanted, why = _wants_reconstruction(ctx)
    if not wanted or x is None:
        return {"done": False, "reason": why if not wanted else "no inputs to fit on"}
    done = []

    def step() -> bool:
        done.append(reconstruct(result.model, original, x, result.kept_indices))
        return bool(done[0].layers)

    decision = keep_if_better("reconstruction", result.model, judge, step)
    return {"done": decision.kept, **done[0].to_dict(), **_decided(decision)}


def _wants_reconstruction(ctx: BuildContext) -> tuple[bool, str]:
    """(whether the build refits the pruned model, and if not why): ``prune.reconstruct``, unset: on
    when there is no labelled training data. The allocation of a ``prune.target`` reads it too."""
    wanted = ctx.project.prune.reconstruct
    if wanted is not None:
        return wanted, "prune.reconstruct is false"
    train = ctx.inputs.train
    return train is None or not train.labels, "off by default when there is labelled training data (fine-tuning uses it)"


def _decided(decision) -> dict:
    """A step's decision in the report: kept or reverted, and the held-out figures it rests on."""
    return {"kept": decision.kept, "decision": decision.to_dict()}


def _recover(ctx: BuildContext, student, teacher, settings) -> dict:
    """Fine-tune ``student`` in place, distilling every output from ``teacher``: on the training data
    with its labels, or, without ``data.train``, on the representative data with none. Early stopping
    watches ``data.val``, else a tenth of the training samples kept out of training — never the eval
    data, whose figure is reported and gated (choosing the epoch on it would make that figure optimistic).
    Returns the report's ``prune.recovery``, with ``data`` saying which data was used."""
    from edgepipe.prune import finetune

    inputs = ctx.inputs
    train, role = (inputs.train, "train") if inputs.train is not None else (inputs.representative, "representative")
    train, val, val_role = _validation(train, inputs.val, role)
    epochs = settings.finetune.epochs if settings.finetune else 0
    with ctx.progress.task("fine-tuning (epochs)", epochs) as update:
        result = finetune(student, teacher, (train.x, train.labels) if train is not None else None,
                          (val.x, val.labels) if val is not None else None, settings,
                          on_epoch=lambda epoch, _: update(epoch), tasks={o.name: o.task for o in inputs.io.outputs})
    doc = result.to_dict()
    if result.done:
        doc["data"] = {"train": _describe(train, role), "early_stopping": _describe(val, val_role) if val else None}
    return doc


VAL_EVERY = 10  # without data.val, every 10th training sample decides early stopping instead of training


def _validation(train, val, role: str):
    """(the samples to train on, the ones early stopping watches, what those are) — disjoint."""
    if train is None or val is not None:
        return train, val, "val"
    n = len(train.x)
    if n < 2 * VAL_EVERY:  # too few to spare: train on all, no early stopping
        return train, None, ""
    held = np.arange(0, n, VAL_EVERY)
    kept = np.setdiff1d(np.arange(n), held)
    return (train.subset(kept, f"{train.where} ({len(kept)} samples trained on)"),
            train.subset(held, f"{train.where} (every {VAL_EVERY}th sample, {len(held)}, kept out of training)"),
            f"{role} (held out)")


def _describe(split, role: str) -> dict:
    """Which data a split is, for the report: label-free recovery must say what it trained on."""
    return {"role": role, "source": split.where, "samples": int(len(split.x)), "labelled_outputs": sorted(split.labels),
            "held_out_from_calibration": split.held_out}


class _Measure:
    """The float models of each prune step on the eval data: top-1 (a one-output classifier with labels,
    in ``accuracy``) and, for every model and output, closeness to the original float model
    (``vs_original``: top-1 agreement in percent, or MSE over the variance of the original's output),
    which needs no labels. One prediction per step serves both."""

    def __init__(self, ctx: BuildContext, original):
        self.ev, io = ctx.inputs.eval, ctx.inputs.io
        self.tasks = {o.name: o.task for o in io.outputs}
        self.labelled = self.ev is not None and self.ev.y is not None and io.single \
            and io.outputs[0].task == "classification"
        self.accuracy: dict = {}
        self.vs_original: dict | None = {"data": self.ev.where} if self.ev is not None else None
        self.reference = self._predict(original)
        self.accuracy["float_original"] = self._top1(self.reference)

    def __call__(self, step: str, model) -> None:
        """Record ``step``'s figures (None when the step did not change the model)."""
        out = self._predict(model) if model is not None else None
        self.accuracy[step] = self._top1(out)
        if self.vs_original is not None:
            from edgepipe.prune.recovery import agreement

            self.vs_original[step] = agreement(out, self.reference, self.tasks) if out is not None else None

    def _predict(self, model) -> dict | None:
        if self.ev is None:
            return None
        from edgepipe.prune.recovery import predict_named

        return predict_named(model, self.ev.x)

    def _top1(self, out: dict | None) -> float | None:
        """Top-1 in percent, like the rest of the report."""
        if out is None or not self.labelled:
            return None
        (scores,) = out.values()
        return 100.0 * float(np.mean(np.argmax(scores, axis=-1) == np.asarray(self.ev.y).reshape(len(scores))))


def check_against_original(prune: dict, accuracy: dict | None, rule) -> Check | None:
    """The shipped int8 model against the unpruned float model, held to max_drop.

    ``prune`` and ``accuracy``: the prune and verify stages' report sections;
    the int8 figure is recorded in ``prune["accuracy"]["int8_pruned"]``.
    """
    if not prune.get("enabled") or accuracy is None:
        return None
    quant = (accuracy.get("quantized") or {}).get("top1")
    base = prune.get("accuracy", {}).get("float_original")
    source = f"measured:{accuracy['runtime']['name']}"
    if base is None or quant is None:
        from edgepipe.pipeline.evaluate import against_original

        return against_original(accuracy, rule, source)
    from edgepipe.harness.metrics import accuracy_drop

    drop = accuracy_drop(base, quant, rule.drop_mode)
    prune["accuracy"]["int8_pruned"] = quant
    unit = "points" if rule.drop_mode == "absolute" else "% of float"
    return Check("accuracy_vs_original", "pass" if drop <= rule.max_drop + 1e-9 else "fail", round(drop, 4),
                 rule.max_drop, unit, f"top-1 {base:.2f}% original float -> {quant:.2f}% pruned int8: "
                 f"drop {drop:.2f} {unit}, max {rule.max_drop:g}", source)
