"""The build driver: each stage in turn, with a check between stages.

Reads like a table of contents on purpose. Bad input raises (exit 2) during
``load``, before anything is written; a failed check is recorded and the
build carries on so the report is complete, then the result says exit 1.
Each stage lives in its own module and fills its part of the context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgepipe.config.project import ProjectConfig
from edgepipe.config.targets import ResolvedTarget
from edgepipe.pipeline import budgets_stage, check_stage, emit_stage, prune_stage, quantize_stage, verify_stage
from edgepipe.pipeline.context import BuildContext
from edgepipe.pipeline.progress import SILENT, Progress
from edgepipe.pipeline.report import BuildReport


@dataclass
class BuildResult:
    """What a build produced; ``report`` holds every figure and check."""

    report: BuildReport
    out_dir: Path
    artifacts: dict[str, Path] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.report.passed

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


def run_build(project: ProjectConfig, target: ResolvedTarget, out_dir: Path,
              progress: Progress = SILENT) -> BuildResult:
    """Run every stage for one target and write the artifacts to ``out_dir``."""
    ctx = new_context(project, target, out_dir, progress)
    with ctx.stage("load"):
        load(ctx)
    with ctx.stage("prune"):
        prune_stage.run(ctx)
    with ctx.stage("quantize"):
        quantize_stage.run(ctx)
    with ctx.stage("check"):
        check_stage.run(ctx)
    with ctx.stage("verify"):
        verify_stage.run(ctx)
        prune_stage.check_against_original(ctx)
    with ctx.stage("budgets"):
        budgets_stage.run(ctx)
    with ctx.stage("emit"):
        emit_stage.run(ctx)
    return BuildResult(ctx.report, out_dir, ctx.artifacts)


def new_context(project: ProjectConfig, target: ResolvedTarget, out_dir: Path, progress: Progress) -> BuildContext:
    from edgepipe.pipeline.settings import convert_settings

    p = target.profile
    report = BuildReport(target={"name": p.name, "chain": list(target.chain), "profile": p.to_dict()})
    ctx = BuildContext(project, target, out_dir, progress, report)
    ctx.settings = convert_settings(p, project)
    report.sections["quantization"] = ctx.settings.to_dict()
    return ctx


def load(ctx: BuildContext) -> None:
    """Model and data, validated against each other (every exit-2 error happens here)."""
    from edgepipe.pipeline.inputs import load_inputs

    q = ctx.project.quantization
    samples = q.calibration_samples or ctx.profile.quantization.calibration_samples
    ctx.inputs = load_inputs(ctx.project, ctx.profile, samples, ctx.settings.scheme)
    ctx.model = ctx.inputs.model
    ctx.report.inputs = {**ctx.inputs.hashes(), "config": {"path": ctx.project.source}}
