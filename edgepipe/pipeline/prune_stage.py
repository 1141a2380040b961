"""Structured pruning (and optional fine-tuning) before quantization.

Runs only when the project config has a ``prune:`` section. The report's
``prune`` section records per-layer channels, params and MACs before and
after, what recovery did, and accuracy at each stage: float original, float
pruned (before and after fine-tuning); the int8 figure comes from the verify
stage, and :func:`check_against_original` holds it to ``max_drop`` against
the *original* float model, which is what the user shipped before.
"""

from __future__ import annotations

from edgepipe.checks import Check
from edgepipe.errors import ConfigError
from edgepipe.pipeline.context import BuildContext
from edgepipe.pipeline.outcome import StageOutcome


def run(ctx: BuildContext) -> StageOutcome:
    """The pruned (and recovered) Keras model for the quantize stage, and the report's ``prune`` section."""
    settings = ctx.project.prune
    if settings is None:
        return StageOutcome(sections={"prune": {"enabled": False}})
    if settings.finetune is not None and ctx.inputs.train is None:
        raise ConfigError(f"{ctx.project.source} (prune.finetune)",
                          "fine-tuning was requested but there is no training data",
                          "set data.train in edgepipe.yaml or pass --train-data, or remove prune.finetune")
    from edgepipe.prune import apply_mn_sparsity, finetune, prune_model

    original = ctx.model
    if settings.method == "channel":
        result = prune_model(original, settings, ctx.profile.accelerator.channel_multiple)
    else:
        result = apply_mn_sparsity(original, settings)
    acc = {"float_original": _accuracy(ctx, original), "float_pruned": _accuracy(ctx, result.model)}
    recal = _recalibrate(ctx, result.model) if settings.method == "channel" else None
    acc["float_pruned_recalibrated"] = _accuracy(ctx, result.model) if recal else None
    recovery = _recover(ctx, result.model, original, settings, finetune)
    acc["float_pruned_finetuned"] = _accuracy(ctx, result.model) if recovery.done else None
    section = {"enabled": True, **result.to_dict(), "bn_recalibration": recal.to_dict() if recal else None,
               "recovery": recovery.to_dict(), "accuracy": acc}
    return StageOutcome(sections={"prune": section}, keras_model=result.model)


def _recalibrate(ctx: BuildContext, model):
    """Fresh BatchNormalization statistics from unlabeled data (train, else representative)."""
    from edgepipe.prune.recalibrate import recalibrate_batchnorm

    data = ctx.inputs.train or ctx.inputs.representative
    if data is None:
        return None
    rec = recalibrate_batchnorm(model, data.x)
    return rec if rec.layers else None


def _recover(ctx: BuildContext, student, teacher, settings, finetune):
    train = (ctx.inputs.train.x, ctx.inputs.train.y) if ctx.inputs.train is not None else None
    ev = (ctx.inputs.eval.x, ctx.inputs.eval.y) if ctx.inputs.eval is not None else None
    epochs = settings.finetune.epochs if settings.finetune else 0
    with ctx.progress.task("fine-tuning (epochs)", epochs) as update:
        return finetune(student, teacher, train, ev, settings, on_epoch=lambda epoch, _: update(epoch))


def _accuracy(ctx: BuildContext, model) -> float | None:
    """Top-1 of a float Keras model on the eval data, in percent."""
    ev = ctx.inputs.eval
    if ev is None or ctx.project.task != "classification":
        return None
    from edgepipe.prune.recovery import accuracy

    return 100.0 * accuracy(model, ev.x, ev.y)  # percent, like the rest of the report


def check_against_original(prune: dict, accuracy: dict | None, rule) -> Check | None:
    """The shipped int8 model against the unpruned float model, held to max_drop.

    ``prune`` and ``accuracy``: the prune and verify stages' report sections;
    the int8 figure is recorded in ``prune["accuracy"]["int8_pruned"]``.
    """
    quant = ((accuracy or {}).get("quantized") or {}).get("top1")
    base = prune.get("accuracy", {}).get("float_original") if prune.get("enabled") else None
    if base is None or quant is None:
        return None
    from edgepipe.harness.metrics import accuracy_drop

    drop = accuracy_drop(base, quant, rule.drop_mode)
    prune["accuracy"]["int8_pruned"] = quant
    unit = "points" if rule.drop_mode == "absolute" else "% of float"
    return Check("accuracy_vs_original", "pass" if drop <= rule.max_drop + 1e-9 else "fail", round(drop, 4),
                 rule.max_drop, unit, f"top-1 {base:.2f}% original float -> {quant:.2f}% pruned int8: "
                 f"drop {drop:.2f} {unit}, max {rule.max_drop:g}", f"measured:{accuracy['runtime']['name']}")
