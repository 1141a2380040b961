"""Gate an existing ``.tflite`` against a target, without TensorFlow.

What ``edgepipe verify`` does, in order:

1. parse the file with the flatbuffer reader (a truncated, corrupt or foreign
   file is an :class:`~edgepipe.errors.InputError`, exit 2, before any
   interpreter sees it);
2. load the eval data and check it against the model's input;
3. ask the target's backend for its judgement — rules, the runtime's own
   checks, memory, latency — exactly as the build's check stage does
   (:mod:`~edgepipe.pipeline.check_stage`);
4. run the model on the eval data with the device's kernels, cross-checked
   with the host reference, as the build's verify stage does
   (:func:`~edgepipe.harness.device.run_on_device`: every interpreter in a
   worker process, so a crash is a failed check, not a dead edgepipe), and hold
   the accuracy to ``--min-accuracy`` and/or a baseline (the float model's
   accuracy, given or read from a build's ``report.json``) with the target's
   ``max_drop``.

There is no Keras model here, so nothing is compared with float outputs; every
other figure is the build's own.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgepipe.checks import Check, held_to_measurement
from edgepipe.config.project import ProjectConfig
from edgepipe.config.targets import ResolvedTarget
from edgepipe.data.calibration import check_against_input_range
from edgepipe.errors import ConfigError, InputError
from edgepipe.runtimes import require_runtime
from edgepipe.pipeline.progress import SILENT, Progress
from edgepipe.pipeline.report import BuildReport, ReportVerdict
from edgepipe.tflite.model import TfliteModel, read_tflite

@dataclass(frozen=True)
class AccuracyGate:
    """What the measured accuracy is held to; every field is optional.

    ``baseline``: the float model's top-1 in percent (RMSE for regression);
    the drop to the measured figure must stay within the target's ``max_drop``.
    ``min_accuracy``: the measured top-1 must reach it (classification).
    """

    min_accuracy: float | None = None
    baseline: float | None = None
    baseline_source: str = "--baseline-accuracy"
    baseline_eval_sha256: str | None = None

    @classmethod
    def from_report(cls, path: str | Path, task: str, min_accuracy: float | None = None) -> "AccuracyGate":
        """The baseline from a previous build's ``report.json`` (its float model's accuracy)."""
        expected = "a report.json written by edgepipe build"
        try:
            doc = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError(str(path), expected, "no such file") from None
        except (OSError, ValueError) as exc:
            raise InputError(str(path), expected, f"unreadable JSON ({type(exc).__name__})") from None
        key = "top1" if task == "classification" else "rmse"
        try:
            value = float(doc["accuracy"]["float"][key])
        except (KeyError, TypeError, ValueError):
            raise InputError(str(path), f"{expected} with accuracy.float.{key}",
                             "no such figure", "build with eval data (data.eval) to record one") from None
        eval_sha = ((doc.get("inputs") or {}).get("eval") or {}).get("sha256")
        return cls(min_accuracy, value, str(path), eval_sha)

    def checks(self, acc: dict, rule, source: str) -> list[Check]:
        """The accuracy checks for the measured section ``acc`` (which gains the baseline figures)."""
        from edgepipe.pipeline.evaluate import accuracy_check

        task, q = acc["task"], acc["quantized"]
        out = []
        if self.min_accuracy is not None:
            if task != "classification":
                raise ConfigError("--min-accuracy", "applies to classification (top-1 %), not regression",
                                  "use a baseline: --baseline-accuracy RMSE or --baseline report.json")
            ok = q["top1"] >= self.min_accuracy
            out.append(Check("min_accuracy", "pass" if ok else "fail", round(q["top1"], 4), self.min_accuracy, "%",
                             f"top-1 {q['top1']:.2f}% on {acc['samples']} samples is "
                             f"{'at least' if ok else 'BELOW'} the minimum {self.min_accuracy:g}%", source))
        if self.baseline is not None:
            key = "top1" if task == "classification" else "rmse"
            with_float = {**acc, "float": {key: self.baseline}}
            out.append(accuracy_check(with_float, rule, source))
            acc["baseline"] = {key: self.baseline, "source": self.baseline_source,
                               "drop": with_float["drop"], "drop_unit": with_float["drop_unit"]}
        if not out:
            key, unit = ("top1", "%") if task == "classification" else ("rmse", "")
            out.append(Check("accuracy", "skip", round(q[key], 4), None, unit,
                             f"{key} {q[key]:.4g}{unit} measured; nothing to hold it to (pass --min-accuracy, "
                             "--baseline-accuracy or --baseline report.json)", source))
        return out


@dataclass(frozen=True)
class VerifyResult(ReportVerdict):
    """The verdict on one ``.tflite`` for one target; ``report`` holds every figure and check."""

    report: BuildReport
    model: TfliteModel

    def to_dict(self) -> dict:
        return self.report.to_dict()

    def save(self, path: str | Path) -> Path:
        """Write the report to ``path`` and its page beside it (``.html``); never onto the model file it judges
        (exit 2, the model untouched)."""
        import os

        from edgepipe.report_html.publish import html_path_for, write_page

        model = Path(self.model.path)
        for where in (Path(path), html_path_for(path)):
            if where.absolute() == model.absolute() or (
                    os.path.exists(where) and os.path.exists(model) and os.path.samefile(where, model)):
                raise InputError(str(where), "a report path other than the model being verified",
                                 f"the model itself ({model})", "pass another --report file, e.g. report.json")
        saved = self.report.save(path)
        write_page(html_path_for(saved), self.report.to_dict())
        return saved


def run_verify(path: str | Path, target: ResolvedTarget, project: ProjectConfig, gate: AccuracyGate = AccuracyGate(),
               progress: Progress = SILENT) -> VerifyResult:
    """Verify the ``.tflite`` at ``path``; the eval data is ``project.data.eval``."""
    from edgepipe.pipeline import check_stage
    from edgepipe.pipeline.inputs import BuildInputs, load_split
    from edgepipe.data.samples import order_for
    from edgepipe.pipeline.io_spec import resolve

    tfl = read_tflite(path)
    require_runtime(target.profile, "verifying")
    report = BuildReport(target=_target_section(target), kind="verify")
    with tempfile.TemporaryDirectory(prefix="edgepipe-verify-") as tmp:
        ctx = model_context(tfl, target, project, Path(tmp), progress, report)
        with ctx.stage("load"):
            io = resolve(project, _io(tfl), str(path), static=project.source_spec("eval") is not None)
            ev = load_split(project, "eval", io, labelled=True)
            ctx.inputs = BuildInputs(None, str(path), tfl.sha256, io, None, ev)
            report.inputs = ctx.inputs.hashes()
            report.sections["model"] = tflite_section(tfl)
            if ev is not None:
                for note in (n for arr, t in zip(order_for(ev.x, tfl.input_names, str(path)), tfl.input_tensors)
                             for n in check_against_input_range(arr, f"eval data {ev.where}", t)):
                    report.notes.append(note)
                    progress.note(note)
            if ev is not None and gate.baseline_eval_sha256 not in (None, ev.sha256):
                report.notes.append(f"the baseline from {gate.baseline_source} was measured on other eval data "
                                    f"(sha256 {gate.baseline_eval_sha256[:12]}, here {ev.sha256[:12]})")
        with ctx.stage("check"):
            checked, ctx.judgement = check_stage.run(ctx)
            ctx.apply(checked)
        with ctx.stage("verify"):
            _accuracy(ctx, gate)
            report.checks = held_to_measurement(report.checks, target.profile.accuracy.require_measured)
    return VerifyResult(report, tfl)


def model_context(tfl: TfliteModel, target: ResolvedTarget, project: ProjectConfig, out_dir: Path | None = None,
                  progress: Progress = SILENT, report: BuildReport | None = None):
    """A build context for an existing ``.tflite``: no Keras model, settings as a build would use."""
    from edgepipe.backends import IOContract
    from edgepipe.pipeline.cache import open_cache
    from edgepipe.pipeline.context import BuildContext
    from edgepipe.pipeline.settings import convert_settings

    report = report or BuildReport(target=_target_section(target), kind="verify")
    ctx = BuildContext(project, target, out_dir, progress, report, cache=open_cache(False))
    ctx.settings = convert_settings(target.profile, project)
    ctx.io_contract = IOContract.from_settings(ctx.settings)
    ctx.tflite_bytes, ctx.tflite = tfl.data, tfl
    return ctx


def judge(tfl: TfliteModel, target: ResolvedTarget, project: ProjectConfig | None = None) -> list[Check]:
    """The backend's checks on an existing model (what the build's check stage records), no data needed."""
    from edgepipe.pipeline import check_stage

    checked, _ = check_stage.run(model_context(tfl, target, project or ProjectConfig()))
    return checked.checks


def tflite_section(tfl: TfliteModel) -> dict:
    """The report's ``model`` section for a model given as a ``.tflite``."""
    return {"path": tfl.path, "tflite_bytes": tfl.size, "weight_bytes": tfl.weight_bytes, "sha256": tfl.sha256,
            "ops": tfl.op_counts, "tensors": len(tfl.tensors),
            "inputs": [t.to_dict() for t in tfl.input_tensors],
            "outputs": [t.to_dict() for t in tfl.output_tensors]}


def _target_section(target: ResolvedTarget) -> dict:
    p = target.profile
    return {"name": p.name, "chain": list(target.chain), "profile": p.to_dict()}


def _io(tfl: TfliteModel) -> dict:
    """The model's inputs and outputs by name (signature keys) with their shapes, as
    :func:`edgepipe.keras_io.names.describe` gives them for a Keras model."""
    def shapes(names, tensors):
        return [[n, [d if d > 0 else None for d in t.shape_signature]] for n, t in zip(names, tensors)]

    return {"inputs": shapes(tfl.input_names, tfl.input_tensors),
            "outputs": shapes(tfl.output_names, tfl.output_tensors)}


def _accuracy(ctx, gate: AccuracyGate) -> None:
    """The device's kernels on the eval data (the build's measurement), held to the gate."""
    from edgepipe.backends import backend_for
    from edgepipe.harness.device import run_on_device, without_data
    from edgepipe.pipeline.evaluate import accuracy_check, split_data

    ev, profile = ctx.inputs.eval, ctx.profile
    if ev is None:
        ctx.report.checks += without_data(Check("accuracy", "skip", detail="no eval data: accuracy was not "
                                                                           "verified (pass --data)"))
        return
    data = split_data(ev, ctx.inputs.io)
    backend = backend_for(profile)
    run = run_on_device(ctx.tflite, data, backend.plan, profile, arena=backend.runner_arena(ctx.tflite),
                        progress=ctx.progress)
    if run.acc is None:
        ctx.report.checks += run.not_measured()
        return
    if "quantized" in run.acc:  # one output, labelled: the gate's figures
        checks = gate.checks(run.acc, profile.accuracy, run.source)
    elif gate.min_accuracy is not None or gate.baseline is not None:
        raise ConfigError("--min-accuracy/--baseline", "apply to a one-output model with labelled eval data",
                          f"{len(ctx.tflite.outputs)} output(s), labels for {sorted(ev.labels) or 'none'}")
    else:
        checks = [accuracy_check(run.acc, profile.accuracy, run.source)]
    ctx.report.checks += [*checks, *run.cross]
    ctx.report.sections["accuracy"] = run.acc
