"""The build driver: each stage in turn, with a check between stages.

Reads like a table of contents on purpose. Bad input raises (exit 2) during
``load``, before anything is written; a failed check is recorded and the
build carries on so the report is complete, then the result says exit 1.
Each stage lives in its own module and fills its part of the context; the
check stage asks the target's backend (:mod:`edgepipe.backends`), the same
one ``verify`` and ``inspect`` ask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgepipe.config.project import ProjectConfig
from edgepipe.config.targets import ResolvedTarget
from edgepipe.checks import held_to_measurement
from edgepipe.errors import InternalError
from edgepipe.pipeline import check_stage, emit_stage, prune_stage, quantize_stage, verify_stage
from edgepipe.pipeline.cache import StageCache, open_cache
from edgepipe.pipeline.context import BuildContext
from edgepipe.pipeline.lock import DEFAULT_TIMEOUT, output_lock
from edgepipe.pipeline.memo import StageMemo
from edgepipe.pipeline.progress import SILENT, Progress
from edgepipe.pipeline.report import BuildReport, ReportVerdict
from edgepipe.runtimes import require_runtime

#: The stages that need the float Keras model: replayed from the cache together, or run together.
MODEL_STAGES = ("prune", "quantize", "verify")


@dataclass
class BuildResult(ReportVerdict):
    """What a build produced; ``report`` holds every figure and check."""

    report: BuildReport
    out_dir: Path
    artifacts: dict[str, Path] = field(default_factory=dict)


def run_build(project: ProjectConfig, target: ResolvedTarget, out_dir: Path, progress: Progress = SILENT,
              cache: StageCache | None = None, lock_timeout: float = DEFAULT_TIMEOUT) -> BuildResult:
    """Run every stage for one target and write the artifacts to ``out_dir``.

    The stages that need the float model are replayed from ``cache`` when
    nothing they read has changed (see :mod:`edgepipe.pipeline.memo`); the
    output folder is locked from the first stage that may write to it.
    """
    ctx = new_context(project, target, out_dir, progress, cache)
    with ctx.stage("load"):
        load(ctx)
    memo = StageMemo(ctx, ctx.cache, MODEL_STAGES)
    with output_lock(out_dir, lock_timeout):
        with ctx.stage("prune"):
            pruned = memo.run("prune", prune_stage.run)
            ctx.apply(pruned)
        with ctx.stage("quantize"):
            ctx.apply(memo.run("quantize", quantize_stage.run))
            _invariant(ctx.tflite is not None, "the quantize stage produced a model")
        with ctx.stage("check"):
            checked, ctx.judgement = check_stage.run(ctx)
            ctx.apply(checked)
        with ctx.stage("verify"):
            verified = memo.run("verify", verify_stage.run)
            _verified_on_the_device(ctx, verified)
            ctx.apply(verified)
            against = prune_stage.check_against_original(pruned.sections["prune"], verified.sections.get("accuracy"),
                                                         ctx.profile.accuracy)
            ctx.report.checks += [against] if against else []
            ctx.report.checks = held_to_measurement(ctx.report.checks, ctx.profile.accuracy.require_measured)
        with ctx.stage("emit"):
            ctx.report.sections["cache"] = memo.summary()
            emit_stage.run(ctx)
    return BuildResult(ctx.report, out_dir, ctx.artifacts)


def _verified_on_the_device(ctx: BuildContext, verified) -> None:
    """Accuracy, if measured, was measured on the backend's device runner and on the model that ships."""
    from edgepipe.backends import backend_for

    acc = verified.sections.get("accuracy")
    if acc is not None:
        _invariant(acc["runtime"]["name"] == backend_for(ctx.profile).plan.device,
                   f"accuracy measured on {acc['runtime']['name']}, the device runner of {ctx.profile.name}")


def _invariant(holds: bool, what: str) -> None:
    """Between stages, the driver checks what the next stage relies on (a failure is edgepipe's bug, exit 3)."""
    if not holds:
        raise InternalError(f"internal check failed between build stages: expected {what}")


def new_context(project: ProjectConfig, target: ResolvedTarget, out_dir: Path, progress: Progress,
                cache: StageCache | None = None) -> BuildContext:
    from edgepipe.backends import IOContract
    from edgepipe.pipeline.settings import convert_settings

    p = target.profile
    require_runtime(p, "building")
    report = BuildReport(target={"name": p.name, "chain": list(target.chain), "profile": p.to_dict()})
    ctx = BuildContext(project, target, out_dir, progress, report, cache=open_cache(cache))
    ctx.settings = convert_settings(p, project)
    ctx.io_contract = IOContract.from_settings(ctx.settings)
    report.sections["quantization"] = ctx.settings.to_dict()
    return ctx


def load(ctx: BuildContext) -> None:
    """Model and data, validated against each other (every exit-2 error happens here)."""
    from edgepipe.pipeline.inputs import load_inputs

    q = ctx.project.quantization
    samples = q.calibration_samples or ctx.profile.quantization.calibration_samples
    ctx.inputs = load_inputs(ctx.project, ctx.profile, samples, ctx.settings.scheme, ctx.cache)
    ctx.model = ctx.inputs.model  # None when the model's shape came from the cache: loaded when needed
    ctx.report.inputs = {**ctx.inputs.hashes(), "config": {"path": ctx.project.source},
                         "io": ctx.inputs.io.to_dict()}
    for note in ctx.inputs.notes:  # calibration-data warnings (data/calibration.py)
        ctx.report.notes.append(note)
        ctx.progress.note(note)
