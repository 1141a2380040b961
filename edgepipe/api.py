"""The Python API that build scripts call: results are objects, nothing prints.

    import edgepipe
    result = edgepipe.build("rpi4", config="edgepipe.yaml")
    if not result.passed:
        for check in result.report.failed_checks:
            print(check.detail)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepipe.checks import Check
from edgepipe.config.project import find_project, load_project
from edgepipe.config.targets import ResolvedTarget, TargetRegistry
from edgepipe.errors import UnknownNameError
from edgepipe.pipeline.progress import SILENT, Progress
from edgepipe.resources import builtin_dir
from edgepipe.tflite import rules
from edgepipe.tflite.memory import MemoryPlan, plan_memory
from edgepipe.tflite.model import TfliteModel, read_tflite


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
          targets_dir: str | Path | None = None, progress: Progress = SILENT):
    """Build one target; returns a :class:`~edgepipe.pipeline.build.BuildResult`.

    ``config`` defaults to ./edgepipe.yaml when it exists; ``overrides`` are
    dotted project-config keys (``{"data.eval": "eval.npz"}``) that win over
    the file. Artifacts go to ``out`` (default ``<output>/<target>``, relative
    to the current directory).
    """
    from edgepipe.pipeline.build import run_build

    if example:
        config = example_config(example)
    elif config is None:
        config = find_project()
    project = load_project(config, overrides)
    resolved = registry(targets_dir).get(target)
    out_dir = Path(out) if out else Path(project.output) / resolved.name
    return run_build(project, resolved, out_dir, progress)


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
            "operators": [{"index": o.index, "op": o.op, "inputs": list(o.inputs), "outputs": list(o.outputs)}
                          for o in m.operators],
            "tensors": [t.to_dict() for t in m.tensors],
            "inputs": [t.to_dict() for t in m.input_tensors],
            "outputs": [t.to_dict() for t in m.output_tensors],
            "memory": self.memory.to_dict(),
            "target": self.target.name if self.target else None,
            "checks": [c.to_dict() for c in self.checks],
        }


def inspect(path: str | Path, target: str | None = None, targets_dir: str | Path | None = None) -> InspectResult:
    """Read a .tflite (no TensorFlow) and, for a target, run the static checks."""
    from edgepipe.checks import budget_check

    model = read_tflite(path)
    plan = plan_memory(model)
    if target is None:
        return InspectResult(model, plan)
    resolved = registry(targets_dir).get(target)
    p = resolved.profile
    q = p.quantization
    checks = [rules.io_dtype_check(model, q.input_dtype.value, q.output_dtype.value)]
    if p.accelerator.int8_only:
        checks.append(rules.int8_only_check(model, q.input_dtype.value, q.output_dtype.value))
    checks += [
        rules.static_shape_check(model),
        budget_check("flash", model.size, p.memory.flash, "bytes", "file", "model file"),
        budget_check("ram", plan.peak_bytes, p.memory.ram, "bytes", "estimate:lifetime-planner",
                     "peak activation memory"),
    ]
    return InspectResult(model, plan, tuple(checks), resolved)
