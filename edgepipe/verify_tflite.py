"""Gate an existing ``.tflite`` against a target, without TensorFlow.

What ``edgepipe verify`` does, in order:

1. parse the file with the flatbuffer reader (a truncated, corrupt or foreign
   file is an :class:`~edgepipe.errors.InputError`, exit 2, before any
   interpreter sees it);
2. load the eval data and check it against the model's input;
3. run the build's own rule checks (:mod:`~edgepipe.pipeline.check_stage`);
4. run the interpreter on the eval data in a child process, so a crash of
   the C++ interpreter on a malformed model becomes an error message, and hold
   the accuracy to ``--min-accuracy`` and/or a baseline (the float model's
   accuracy, given or read from a build's ``report.json``) with the target's
   ``max_drop``;
5. run the build's budget checks (:mod:`~edgepipe.pipeline.budgets_stage`).

The same stages as ``edgepipe build`` run on a context that has no Keras
model, so a verify and a build judge a model the same way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepipe.checks import Check
from edgepipe.config.project import ProjectConfig
from edgepipe.config.schema import Runtime
from edgepipe.config.targets import ResolvedTarget
from edgepipe.data.calibration import check_against_input_range
from edgepipe.errors import ConfigError, InputError
from edgepipe.runtimes import require_runtime
from edgepipe.pipeline.progress import SILENT, Progress
from edgepipe.pipeline.report import BuildReport, ReportVerdict
from edgepipe.tflite.model import TfliteModel, read_tflite

_WORKER = "from edgepipe.verify_tflite import _worker; _worker()"
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

    def checks(self, acc: dict, rule) -> list[Check]:
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
                             f"{'at least' if ok else 'BELOW'} the minimum {self.min_accuracy:g}%",
                             "measured:litert-host"))
        if self.baseline is not None:
            key = "top1" if task == "classification" else "rmse"
            with_float = {**acc, "float": {key: self.baseline}}
            out.append(accuracy_check(with_float, rule))
            acc["baseline"] = {key: self.baseline, "source": self.baseline_source,
                               "drop": with_float["drop"], "drop_unit": with_float["drop_unit"]}
        if not out:
            key, unit = ("top1", "%") if task == "classification" else ("rmse", "")
            out.append(Check("accuracy", "skip", round(q[key], 4), None, unit,
                             f"{key} {q[key]:.4g}{unit} measured; nothing to hold it to (pass --min-accuracy, "
                             "--baseline-accuracy or --baseline report.json)"))
        return out


@dataclass(frozen=True)
class VerifyResult(ReportVerdict):
    """The verdict on one ``.tflite`` for one target; ``report`` holds every figure and check."""

    report: BuildReport
    model: TfliteModel

    def to_dict(self) -> dict:
        return self.report.to_dict()

    def save(self, path: str | Path) -> Path:
        return self.report.save(path)


def run_verify(path: str | Path, target: ResolvedTarget, project: ProjectConfig, gate: AccuracyGate = AccuracyGate(),
               isolate: bool = True, progress: Progress = SILENT) -> VerifyResult:
    """Verify the ``.tflite`` at ``path``; the eval data is ``project.data.eval``."""
    from edgepipe.pipeline import budgets_stage, check_stage
    from edgepipe.pipeline.inputs import BuildInputs, load_split

    tfl = read_tflite(path)
    require_runtime(target.profile, "verifying")
    report = BuildReport(target=_target_section(target), kind="verify")
    with tempfile.TemporaryDirectory(prefix="edgepipe-verify-") as tmp:
        ctx = model_context(tfl, target, project, Path(tmp), progress, report)
        with ctx.stage("load"):
            shape, n_out = _io(tfl)
            n_classes = n_out if project.task == "classification" else None
            ev = load_split(project, "eval", shape, need_labels=True, task=project.task, n_classes=n_classes)
            ctx.inputs = BuildInputs(None, str(path), tfl.sha256, shape, n_out, None, ev)
            report.inputs = ctx.inputs.hashes()
            report.sections["model"] = tflite_section(tfl)
            if ev is not None:
                for note in check_against_input_range(ev.x, f"eval data {ev.where}", tfl.input_tensors[0]):
                    report.notes.append(note)
                    progress.note(note)
            if ev is not None and gate.baseline_eval_sha256 not in (None, ev.sha256):
                report.notes.append(f"the baseline from {gate.baseline_source} was measured on other eval data "
                                    f"(sha256 {gate.baseline_eval_sha256[:12]}, here {ev.sha256[:12]})")
        with ctx.stage("check"):
            check_stage.run(ctx)
        with ctx.stage("verify"):
            _accuracy(ctx, gate, isolate)
        with ctx.stage("budgets"):
            budgets_stage.run(ctx)
    return VerifyResult(report, tfl)


def model_context(tfl: TfliteModel, target: ResolvedTarget, project: ProjectConfig, out_dir: Path | None = None,
                  progress: Progress = SILENT, report: BuildReport | None = None):
    """A build context for an existing ``.tflite``: no Keras model, settings as a build would use."""
    from edgepipe.pipeline.cache import open_cache
    from edgepipe.pipeline.context import BuildContext
    from edgepipe.pipeline.settings import convert_settings

    report = report or BuildReport(target=_target_section(target), kind="verify")
    ctx = BuildContext(project, target, out_dir, progress, report, cache=open_cache(False))
    ctx.settings = convert_settings(target.profile, project)
    ctx.tflite_bytes, ctx.tflite = tfl.data, tfl
    return ctx


def rule_checks(tfl: TfliteModel, target: ResolvedTarget, project: ProjectConfig | None = None) -> list[Check]:
    """The build's rule checks (int8-only, I/O types, static shapes) on an existing model."""
    from edgepipe.pipeline import check_stage

    ctx = model_context(tfl, target, project or ProjectConfig())
    check_stage.run(ctx)
    return list(ctx.report.checks)


def tflite_section(tfl: TfliteModel) -> dict:
    """The report's ``model`` section for a model given as a ``.tflite``."""
    return {"path": tfl.path, "tflite_bytes": tfl.size, "weight_bytes": tfl.weight_bytes, "sha256": tfl.sha256,
            "ops": tfl.op_counts, "tensors": len(tfl.tensors),
            "inputs": [t.to_dict() for t in tfl.input_tensors],
            "outputs": [t.to_dict() for t in tfl.output_tensors]}


def _target_section(target: ResolvedTarget) -> dict:
    p = target.profile
    return {"name": p.name, "chain": list(target.chain), "profile": p.to_dict()}


def _io(tfl: TfliteModel) -> tuple[tuple, int | None]:
    if len(tfl.inputs) != 1 or len(tfl.outputs) != 1:
        raise InputError(tfl.path, "a model with one input and one output",
                         f"{len(tfl.inputs)} inputs and {len(tfl.outputs)} outputs")
    out = tfl.output_tensors[0].shape
    return tuple(tfl.input_tensors[0].shape), (int(out[-1]) if out and out[-1] > 0 else None)


def _accuracy(ctx, gate: AccuracyGate, isolate: bool) -> None:
    from edgepipe.harness import metrics

    ev, profile, task = ctx.inputs.eval, ctx.profile, ctx.project.task
    if ev is None:
        ctx.report.checks.append(Check("accuracy", "skip", detail="no eval data: accuracy was not verified "
                                                                  "(pass --data)"))
        return
    kernels = "xnnpack" if profile.runtime is Runtime.LITERT else "reference"
    if isolate:
        out = predict_isolated(ctx.tflite_bytes, ev.x, profile.threads, kernels, ctx.tflite.path)
    else:
        from edgepipe.runtimes.litert import LiteRTRunner

        out = LiteRTRunner(ctx.tflite_bytes, profile.threads, kernels).predict(ev.x)
    acc = {"task": task, "samples": int(len(ev.y))}
    if task == "classification":
        acc["quantized"] = metrics.classification(ev.y, out)
        if ctx.inputs.n_outputs:
            acc["confusion_matrix"] = metrics.confusion_matrix(ev.y, out, ctx.inputs.n_outputs)
    else:
        acc["quantized"] = metrics.regression(ev.y, out)
    acc["runtime"] = {"name": "litert", "kernels": kernels, "threads": profile.threads, "isolated": isolate}
    ctx.report.checks += gate.checks(acc, profile.accuracy)
    ctx.report.sections["accuracy"] = acc


def predict_isolated(model_bytes: bytes, x: np.ndarray, threads: int, kernels: str, where: str) -> np.ndarray:
    """LiteRT outputs for ``x``, computed in a child process: a crash there is an InputError here."""
    import edgepipe

    with tempfile.TemporaryDirectory(prefix="edgepipe-run-") as tmp:
        folder = Path(tmp)
        (folder / "model.tflite").write_bytes(model_bytes)
        np.save(folder / "x.npy", np.ascontiguousarray(x, np.float32))
        pkg_root = str(Path(edgepipe.__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [pkg_root, os.environ.get("PYTHONPATH")])))
        proc = subprocess.run([sys.executable, "-c", _WORKER, tmp, str(threads), kernels],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise InputError(where, "a model the LiteRT interpreter can run", _why(proc))
        return np.load(folder / "out.npy")


def _why(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        return f"the interpreter crashed ({name})"
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    return f"the interpreter refused it: {lines[-1] if lines else f'exit status {proc.returncode}'}"


def _worker() -> None:
    """Child process: ``<folder> <threads> <kernels>``; reads model.tflite and x.npy, writes out.npy."""
    from edgepipe.runtimes.litert import LiteRTRunner

    folder, threads, kernels = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    runner = LiteRTRunner((folder / "model.tflite").read_bytes(), threads, kernels)
    np.save(folder / "out.npy", runner.predict(np.load(folder / "x.npy")))
