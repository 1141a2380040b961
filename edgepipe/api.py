"""The Python API that build scripts call: results are objects, nothing prints.

    import edgepipe
    result = edgepipe.build("rpi4", config="edgepipe.yaml")
    if not result.passed:
        for check in result.report.failed_checks:
            print(check.detail)

``build`` (one target), ``build_many`` (several, in parallel processes),
``verify`` (an existing .tflite, no TensorFlow) and ``inspect`` (structure
and static checks, no TensorFlow). See docs/python-api.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepipe.checks import Check
from edgepipe.config.project import ProjectConfig, find_project, load_project
from edgepipe.config.targets import ResolvedTarget, TargetRegistry
from edgepipe.errors import ConfigError, UnknownNameError
from edgepipe.pipeline.cache import CacheSettings, StageCache, open_cache
from edgepipe.pipeline.lock import DEFAULT_TIMEOUT
from edgepipe.pipeline.progress import SILENT, Progress
from edgepipe.resources import builtin_dir
from edgepipe.runtimes import require_runtime
from edgepipe.tflite.memory import MemoryPlan, plan_memory
from edgepipe.tflite.model import TfliteModel, read_tflite

if TYPE_CHECKING:
    from edgepipe.fit import FitOptions, FitResult
    from edgepipe.pipeline.multi import MultiBuildResult
    from edgepipe.verify_tflite import VerifyResult


def example_config(name: str) -> Path:
    """The edgepipe.yaml of a bundled example."""
    root = builtin_dir("examples")
    known = sorted(p.parent.name for p in root.glob("*/edgepipe.yaml"))
    if name not in known:
        raise UnknownNameError("example", name, known)
    return root / name / "edgepipe.yaml"


def registry(targets_dir: str | Path | None = None) -> TargetRegistry:
    dirs = [Path.cwd() / "targets"] + ([Path(targets_dir)] if targets_dir else [])
    return TargetRegistry(dirs)


def build(target: str, config: str | Path | None = None, *, example: str | None = None,
          out: str | Path | None = None, overrides: dict[str, Any] | None = None,
          targets_dir: str | Path | None = None, progress: Progress = SILENT,
          cache: StageCache | CacheSettings | bool | None = None, lock_timeout: float = DEFAULT_TIMEOUT):
    """Build one target; returns a :class:`~edgepipe.pipeline.build.BuildResult`.

    ``config`` defaults to ./edgepipe.yaml when it exists; ``overrides`` are
    dotted project-config keys (``{"data.eval": "eval.npz"}``, or
    ``{"prune.target": {"macs": 0.5}}`` as ``--prune-target macs=0.5`` sets) that win over
    the file. Artifacts go to ``out`` (default ``<output>/<target>``, relative
    to the current directory). ``cache``: ``None`` or ``True`` uses the stage
    cache as the environment configures it, ``False`` turns it off, or pass
    :class:`~edgepipe.pipeline.cache.CacheSettings`. A second build into the
    same ``out`` waits up to ``lock_timeout`` seconds, then raises.
    """
    from edgepipe.pipeline.build import run_build

    project = load_project(_config_path(config, example), overrides)
    resolved = registry(targets_dir).get(target)
    out_dir = Path(out) if out else Path(project.output) / resolved.name
    return run_build(project, resolved, out_dir, progress, open_cache(cache), lock_timeout)


def build_many(targets: list[str] | None = None, config: str | Path | None = None, *, all_targets: bool = False,
               example: str | None = None, out: str | Path | None = None, overrides: dict[str, Any] | None = None,
               targets_dir: str | Path | None = None, cache: CacheSettings | bool | None = None,
               lock_timeout: float = DEFAULT_TIMEOUT, workers: int = 2,
               progress: Progress = SILENT, ray_address: str | None = None) -> MultiBuildResult:
    """Build several targets in parallel processes, each into ``<out>/<target>/``.

    ``targets`` defaults to the project config's ``target:``; ``all_targets``
    builds every known profile. ``ray_address`` (``HOST:PORT`` of a running
    Ray cluster, needs ``edgepipe[ray]``) builds each target as a Ray task
    instead of in ``workers`` local processes; ``out`` must then be a folder
    every node shares (docs/scale-out.md). Returns a
    :class:`~edgepipe.pipeline.multi.MultiBuildResult` whose ``exit_code`` is
    the worst of the targets'.
    """
    from edgepipe.pipeline.multi import BuildJob, run_jobs

    config = _config_path(config, example)
    project = load_project(config, overrides)
    resolved = resolve_targets(targets, all_targets, project, targets_dir)
    root = Path(out) if out else Path(project.output)
    settings = open_cache(cache).settings
    jobs = [BuildJob(spec, r.name, root / r.name, str(config) if config else None, None, dict(overrides or {}),
                     str(targets_dir) if targets_dir else None, settings, lock_timeout)
            for spec, r in resolved]
    return run_jobs(jobs, workers, progress, ray_address)


def resolve_targets(targets: list[str] | None, all_targets: bool, project: ProjectConfig,
                    targets_dir: str | Path | None = None) -> list[tuple[str, ResolvedTarget]]:
    """(as given, resolved) for each target: the given ones, every known one, or the project's."""
    reg = registry(targets_dir)
    if all_targets:
        targets = reg.names()
    elif not targets:
        targets = _named_targets(project)
    if not targets:
        raise ConfigError(project.source, "no target given", "pass --target NAME, or set 'target:' in edgepipe.yaml")
    seen: dict[str, tuple[str, ResolvedTarget]] = {}
    for spec in targets:
        r = reg.get(spec)
        seen.setdefault(r.name, (spec, r))
    return list(seen.values())


def project_targets(config: str | Path | None = None, example: str | None = None,
                    overrides: dict[str, Any] | None = None) -> list[str]:
    """The targets the project config names (``target:``), as written there."""
    return _named_targets(load_project(_config_path(config, example), overrides))


def _named_targets(project: ProjectConfig) -> list[str]:
    given = project.target
    return [given] if isinstance(given, str) else list(given or [])


def verify(model: str | Path, target: str, data: str | Path | None = None, *, config: str | Path | None = None,
           x_key: str = "x", y_key: str = "y", task: str | None = None, scale: float | None = None,
           mean: float | None = None, std: float | None = None, min_accuracy: float | None = None,
           baseline_accuracy: float | None = None, baseline: str | Path | None = None,
           targets_dir: str | Path | None = None, progress: Progress = SILENT) -> VerifyResult:
    """Gate an existing ``.tflite`` (no TensorFlow): returns a :class:`~edgepipe.verify_tflite.VerifyResult`.

    ``data`` (a .npz, .npy, image folder or ``module:function``; arrays
    ``x_key``/``y_key``) overrides the config's ``data.eval``; ``scale``,
    ``mean``, ``std`` the preprocessing. Accuracy is held to ``min_accuracy``
    (top-1 %) and/or a baseline — the float model's accuracy given as
    ``baseline_accuracy`` or read from a build's ``report.json`` (``baseline``)
    — with the target's ``max_drop``. Accuracy is measured with the kernels the
    device runs, each interpreter in a worker process (a crash is a failed check).
    """
    import math

    from edgepipe.verify_tflite import AccuracyGate, run_verify

    if baseline is not None and baseline_accuracy is not None:
        raise ConfigError("--baseline / --baseline-accuracy", "give one baseline, not both")
    overrides = {"task": task, "preprocess.scale": scale, "preprocess.mean": mean, "preprocess.std": std}
    if data is not None:
        where = Path(data)
        overrides["data.eval"] = {"path": str(where.resolve()) if where.exists() else str(data), "x": x_key, "y": y_key}
    project = load_project(config, overrides)
    top1 = project.task == "classification"
    if min_accuracy is not None and not 0 <= min_accuracy <= 100:  # NaN fails both comparisons
        raise ConfigError("--min-accuracy", f"expected a top-1 accuracy in percent, 0 to 100, found {min_accuracy!r}")
    if baseline is not None:
        gate = AccuracyGate.from_report(baseline, project.task, min_accuracy)
    else:
        gate = AccuracyGate(min_accuracy, baseline_accuracy)
    b = gate.baseline
    if b is not None and not (math.isfinite(b) and 0 <= b <= (100 if top1 else math.inf)):
        what = "a top-1 accuracy in percent, 0 to 100" if top1 else "an RMSE, 0 or more and finite"
        raise ConfigError(gate.baseline_source, f"expected {what}, found {b!r}")
    return run_verify(model, registry(targets_dir).get(target), project, gate, progress)


def _config_path(config: str | Path | None, example: str | None) -> Path | str | None:
    if example:
        return example_config(example)
    return config if config is not None else find_project()


@dataclass(frozen=True)
class InspectResult:
    """A .tflite model's structure and, if a target is given, its rule checks."""

    model: TfliteModel
    memory: MemoryPlan
    checks: tuple[Check, ...] = ()
    target: ResolvedTarget | None = None

    def to_dict(self) -> dict:
        m = self.model
        return {
            "path": m.path, "bytes": m.size, "sha256": m.sha256, "weight_bytes": m.weight_bytes,
            "subgraphs": m.subgraph_count, "ops": m.op_counts,
            "operators": [{"index": o.index, "subgraph": o.subgraph, "op": o.op, "inputs": list(o.inputs),
                           "outputs": list(o.outputs)} for o in m.all_operators],
            "variables": [v.to_dict() for v in m.variables],
            "tensors": [t.to_dict() for t in m.tensors],
            "inputs": [t.to_dict() for t in m.input_tensors],
            "outputs": [t.to_dict() for t in m.output_tensors],
            "memory": self.memory.to_dict(),
            "target": self.target.name if self.target else None,
            "checks": [c.to_dict() for c in self.checks],
        }


def render_report(out_dir: str | Path, *, lock_timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Render ``report.html`` again from ``report.json``; returns the page's path (no TensorFlow needed).

    ``out_dir`` is a build's output folder (the page goes in through the same
    all-or-nothing swap as a build, and the manifest lists its new sha256), a
    folder holding a ``verify --report`` JSON, a report's JSON file, or the root
    of a multi-target build (the comparison page, from each target's report).
    No report there, or not one edgepipe wrote, is an
    :class:`~edgepipe.errors.InputError` (exit 2).
    """
    from edgepipe.report_html.publish import rerender

    return rerender(out_dir, lock_timeout)


def inspect(path: str | Path, target: str | None = None, targets_dir: str | Path | None = None) -> InspectResult:
    """Read a .tflite (no TensorFlow) and, for a target, its backend's judgement.

    The checks are exactly those ``verify`` and ``build`` record before they
    look at data: rules, the runtime's own checks (for TFLM, the arena measured
    by running the model), memory and latency budgets.
    """
    from edgepipe.verify_tflite import judge

    model = read_tflite(path)
    plan = plan_memory(model)
    if target is None:
        return InspectResult(model, plan)
    resolved = registry(targets_dir).get(target)
    require_runtime(resolved.profile, "inspecting")
    return InspectResult(model, plan, tuple(judge(model, resolved)), resolved)


def fit(target: str, config: str | Path | None = None, *, example: str | None = None,
        out: str | Path | None = None, overrides: dict[str, Any] | None = None,
        targets_dir: str | Path | None = None, cache: CacheSettings | bool | None = None,
        options: FitOptions | None = None, progress: Progress = SILENT) -> FitResult:
    """Search the compression ``target`` allows for a build that meets every budget; returns a
    :class:`~edgepipe.fit.FitResult` (``exit_code`` 0: a candidate fits and was published to ``out``;
    1: none fits, the nearest miss was published and ``fit.json`` says what it misses).

    Inputs as for :func:`build`; ``options`` sets the number of candidates, the seed, what to prefer
    among those that fit, fine-tuning, and where to run them (local processes or a Ray cluster).
    See docs/fit.md.
    """
    from edgepipe.fit import FitOptions, run_fit
    from edgepipe.fit.trial import BuildRequest

    path = _config_path(config, example)
    project = load_project(path, overrides)
    resolved = registry(targets_dir).get(target)
    out_dir = Path(out) if out else Path(project.output) / resolved.name
    request = BuildRequest(target, str(path) if path else None, dict(overrides or {}),
                           str(targets_dir) if targets_dir else None, open_cache(cache).settings)
    return run_fit(request, out_dir, options or FitOptions(), progress)
