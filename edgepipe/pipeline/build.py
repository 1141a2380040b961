"""The build driver: each stage in turn, with a check between stages.

Reads like a table of contents on purpose: load -> (prune) -> quantize and
convert -> check the flatbuffer -> verify accuracy -> measure budgets ->
write artifacts. Bad input raises (exit 2) before anything is written;
a failed check is recorded and the build carries on so the report is
complete, then the result says exit 1.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgepipe.checks import Check, budget_check
from edgepipe.config.project import ProjectConfig
from edgepipe.config.schema import Scheme
from edgepipe.config.targets import ResolvedTarget
from edgepipe.emit.files import sha256_file, write_atomic
from edgepipe.pipeline.progress import SILENT, Progress
from edgepipe.pipeline.report import BuildReport
from edgepipe.tflite import rules
from edgepipe.tflite.memory import plan_memory
from edgepipe.tflite.model import TfliteModel, parse_tflite


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


class _Timer:
    def __init__(self, report: BuildReport, progress: Progress):
        self.report, self.progress = report, progress

    @contextmanager
    def stage(self, name: str):
        self.progress.stage(name)
        t0 = time.perf_counter()
        yield
        self.report.timings[name] = round(time.perf_counter() - t0, 3)


def run_build(project: ProjectConfig, target: ResolvedTarget, out_dir: Path,
              progress: Progress = SILENT) -> BuildResult:
    """Run every stage for one target and write the artifacts to ``out_dir``."""
    from edgepipe.keras_io.convert import convert
    from edgepipe.pipeline.inputs import load_inputs
    from edgepipe.pipeline.settings import convert_settings

    profile = target.profile
    report = BuildReport(target={"name": profile.name, "chain": list(target.chain),
                                 "profile": profile.to_dict()})
    timer = _Timer(report, progress)
    settings = convert_settings(profile, project)
    with timer.stage("load"):
        inputs = load_inputs(project, profile, profile.quantization.calibration_samples
                             if project.quantization.calibration_samples is None
                             else project.quantization.calibration_samples, settings.scheme)
        report.inputs = inputs.hashes()
        report.inputs["config"] = {"path": project.source}
        report.sections["quantization"] = settings.to_dict()
    model = inputs.model
    with timer.stage("quantize"):
        rep = inputs.representative.x if inputs.representative is not None else None
        total = len(rep) if rep is not None and settings.scheme in (Scheme.INT8, Scheme.INT16X8) else 0
        with progress.task("calibrating", total) as update:
            tflite_bytes = convert(model, rep, settings, on_sample=lambda i: update(i + 1))
        tfl = parse_tflite(tflite_bytes, "converted model")
    report.sections["model"] = _model_section(model, tfl)
    with timer.stage("check"):
        report.checks += _flatbuffer_checks(tfl, profile, settings)
    with timer.stage("verify"):
        report.checks.append(_verify(inputs, tflite_bytes, project, profile, report, progress))
    with timer.stage("budgets"):
        report.checks += _budget_checks(tfl, tflite_bytes, inputs, profile, report)
    return _emit(report, tflite_bytes, out_dir)


def _model_section(model, tfl: TfliteModel) -> dict:
    return {
        "keras_name": model.name, "params": int(model.count_params()),
        "tflite_bytes": tfl.size, "weight_bytes": tfl.weight_bytes, "sha256": tfl.sha256,
        "ops": tfl.op_counts, "tensors": len(tfl.tensors),
        "inputs": [t.to_dict() for t in tfl.input_tensors],
        "outputs": [t.to_dict() for t in tfl.output_tensors],
    }


def _flatbuffer_checks(tfl: TfliteModel, profile, settings) -> list[Check]:
    checks = [rules.io_dtype_check(tfl, settings.input_dtype.value, settings.output_dtype.value)]
    if profile.accelerator.int8_only:
        checks.append(rules.int8_only_check(tfl, settings.input_dtype.value, settings.output_dtype.value))
    if profile.runtime.value != "litert":
        checks.append(rules.static_shape_check(tfl))
    return checks


def _verify(inputs, tflite_bytes: bytes, project, profile, report: BuildReport, progress: Progress) -> Check:
    from edgepipe.pipeline.evaluate import accuracy_check, compare, predict_keras, predict_tflite
    from edgepipe.runtimes.litert import LiteRTRunner

    if inputs.eval is None:
        return accuracy_check(None, profile.accuracy)
    ev = inputs.eval
    float_out = predict_keras(inputs.model, ev.x)
    runner = LiteRTRunner(tflite_bytes, threads=profile.threads, kernels="xnnpack")
    quant_out = predict_tflite(runner, ev.x, progress, "evaluating")
    acc = compare(project.task, ev.y, float_out, quant_out, inputs.n_outputs)
    acc["runtime"] = {"name": "litert", "kernels": "xnnpack", "threads": profile.threads,
                      "batched": runner.batched}
    check = accuracy_check(acc, profile.accuracy)
    report.sections["accuracy"] = acc
    return check


def _budget_checks(tfl: TfliteModel, tflite_bytes: bytes, inputs, profile, report: BuildReport) -> list[Check]:
    from edgepipe.runtimes.litert import LiteRTRunner

    plan = plan_memory(tfl)
    report.sections["memory"] = {"model_bytes": tfl.size, **plan.to_dict()}
    sample = (inputs.eval or inputs.representative).x[:1] if (inputs.eval or inputs.representative) else None
    checks = [
        budget_check("flash", tfl.size, profile.memory.flash, "bytes", "file", "model file"),
        budget_check("ram", plan.peak_bytes, profile.memory.ram, "bytes", "estimate:lifetime-planner",
                     "peak activation memory"),
    ]
    if sample is not None:
        lat = LiteRTRunner(tflite_bytes, threads=profile.threads).latency(sample)
        report.sections["latency"] = {"host": lat.to_dict()}
        checks.append(budget_check("latency", lat.median_s, profile.latency, "s", lat.source,
                                   f"host-measured median latency ({lat.threads} threads)"))
    return checks


def _emit(report: BuildReport, tflite_bytes: bytes, out_dir: Path) -> BuildResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = write_atomic(out_dir / "model.tflite", tflite_bytes)
    report.artifacts["model.tflite"] = {"path": str(model_path), "bytes": len(tflite_bytes),
                                        "sha256": sha256_file(model_path)}
    report_path = out_dir / "report.json"
    report.save(report_path)
    return BuildResult(report, out_dir, {"model.tflite": model_path, "report.json": report_path})
