"""``edgepipe fit``: search the compression the target allows for a build that meets every budget.

Reads like the build driver: resolve the request, open (or resume) the
journal, search, choose, then publish the chosen candidate exactly as
``edgepipe build`` wrote it when it was measured (its trial folder, copied
into the output folder in one swap: see :mod:`edgepipe.fit.publish`), with
``fit.json`` and ``pareto.svg`` beside its artifacts.

Exit codes as for build: 0 a candidate passes every check and ships;
1 none does, and the nearest miss is published (its report says what
fails) with ``fit.json`` naming the budgets it misses and by how much;
2 bad usage or input; 3 an internal or tool failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from edgepipe import __version__
from edgepipe.emit.files import write_json
from edgepipe.errors import EXIT_CHECK_FAILED, EXIT_OK, ConfigError
from edgepipe.fit.choose import PREFERENCES, choose, headroom, leanest, nearest_miss, pareto, scored
from edgepipe.fit.journal import Journal, state_dir_for
from edgepipe.fit.publish import measured_build, publish_measured, rebuild
from edgepipe.fit.search import SearchPlan, run_search
from edgepipe.fit.space import Knobs, baseline, first_allowed
from edgepipe.fit.trial import BuildRequest, TrialRecord
from edgepipe.pipeline.progress import SILENT, Progress

SCHEMA = "edgepipe.fit/1"


@dataclass(frozen=True)
class FitOptions:
    trials: int = 24
    batch: int = 4
    seed: int = 0
    prefer: str = "accuracy"
    finetune_top: int = 2
    finetune_epochs: int = 0
    workers: int = 2
    ray_address: str | None = None
    fresh: bool = False

    def check(self) -> None:
        if self.trials < 1:
            raise ConfigError("--trials", f"{self.trials} is below 1", "give at least 1 candidate")
        if self.batch < 1:
            raise ConfigError("--batch", f"{self.batch} is below 1")
        if self.prefer not in PREFERENCES:
            raise ConfigError("--prefer", f"{self.prefer!r} is not one of {', '.join(PREFERENCES)}")


@dataclass
class FitResult:
    """The search, its records and what shipped; ``build`` is the published build's result."""

    target: str
    out_dir: Path
    records: list[TrialRecord]
    shipped: TrialRecord | None
    nearest: TrialRecord | None
    build: object
    doc: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.shipped is not None and self.build is not None and self.build.passed

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_CHECK_FAILED


def run_fit(request: BuildRequest, out_dir: Path, options: FitOptions, progress: Progress = SILENT) -> FitResult:
    """The whole fit (see the module docstring)."""
    options.check()
    started = time.monotonic()
    project, profile = _resolve(request)
    journal = Journal.open(state_dir_for(out_dir), _request_key(request, options), options.fresh)
    if journal.discarded:
        progress.note(f"fit: started afresh ({journal.discarded})")
    plan = SearchPlan(request, baseline(project, profile), project.quantization.per_channel, options.trials,
                      options.batch, options.seed, options.finetune_top, options.finetune_epochs, options.prefer,
                      first_allowed(project))
    from edgepipe.scale import executor_for

    with executor_for(options.ray_address, options.workers) as executor:
        records = run_search(plan, journal, executor, progress)
        where = executor.describe()
    shipped = choose(records, options.prefer)
    nearest = None if shipped is not None else nearest_miss(records)
    progress.stage("fit: publishing the chosen candidate")
    result = FitResult(profile.name, out_dir, records, shipped, nearest, None)
    _publish(request, shipped or nearest, result, journal,
             lambda: fit_document(result, options, journal, where, time.monotonic() - started))
    return result


def _resolve(request: BuildRequest):
    from edgepipe.api import registry
    from edgepipe.config.project import load_project

    project = load_project(request.config, request.overrides)
    return project, registry(request.targets_dir).get(request.target).profile


def _request_key(request: BuildRequest, options: FitOptions) -> dict:
    """What must match for a journal to be resumed (``--trials`` may grow; the rest may not change)."""
    return {"edgepipe": __version__, "target": request.target, "config": request.config,
            "overrides": {k: repr(v) for k, v in sorted(request.overrides.items())},
            "targets_dir": request.targets_dir, "seed": options.seed, "batch": options.batch,
            "prefer": options.prefer, "knobs": sorted(Knobs.__dataclass_fields__),
            "finetune": [options.finetune_top, options.finetune_epochs]}


def _publish(request: BuildRequest, record: TrialRecord | None, result: FitResult, journal: Journal,
             document) -> None:
    """The chosen candidate's measured folder into ``--out`` with fit.json and the plot, in one swap.

    A candidate whose trial folder is gone (a resumed journal, the folder deleted) is built again,
    and ``fit.json``'s ``published`` says which of the two happened.
    """
    out_dir = result.out_dir
    folder = journal.folder_of(record) if record is not None else None
    measured = measured_build(folder, out_dir) if folder is not None else None
    result.build = rebuild(request, record, out_dir) if record is not None and measured is None else measured
    result.doc = document()
    result.doc["published"] = None if record is None else {"trial": record.number,
                                                           "how": "copied" if measured else "rebuilt"}
    if measured is not None:
        publish_measured(folder, measured, out_dir, lambda staged: _write_beside(result, staged))
    else:
        _write_beside(result, out_dir)


def fit_document(result: FitResult, options: FitOptions, journal: Journal, where: dict, seconds: float) -> dict:
    """``fit.json``: the request, every candidate, the fronts, and what shipped or nearly did."""
    rows = scored(result.records)
    budgets = [b.name for b in rows[0].score.budgets] if rows else []
    doc = {"schema": SCHEMA, "target": result.target, "status": "passed" if result.passed else "failed",
           "exit_code": result.exit_code, "seed": options.seed, "prefer": options.prefer,
           "trials_requested": options.trials, "batch": options.batch, "executor": where,
           "resumed_trials": journal.resumed, "state_dir": str(journal.folder), "seconds": round(seconds, 1),
           "pareto": pareto(result.records), "pareto_per_budget": {b: pareto(result.records, b) for b in budgets},
           "shipped": _summary(result.shipped), "nearest_miss": _summary(result.nearest),
           "leanest": {name: _summary(r) for name, r in leanest(result.records).items()},
           "trials": [r.to_dict() for r in result.records]}
    base = next((r for r in rows if r.number == 0), None)
    if base is not None:
        doc["baseline"] = _summary(base)
    if result.nearest is not None:
        doc["misses"] = result.nearest.score.misses()
    return doc


def _summary(record: TrialRecord | None) -> dict | None:
    if record is None:
        return None
    return {"trial": record.number, "label": record.knobs.label(), "knobs": record.knobs.to_dict(),
            "damage": record.score.damage, "accuracy": record.score.accuracy,
            "headroom": headroom(record.score), "misses": record.score.misses()}


def _write_beside(result: FitResult, out_dir: Path) -> None:
    """``pareto.svg`` then ``fit.json`` (last: its presence says the fit finished) into ``out_dir``
    (the staged copy of the measured build, or the rebuilt output folder)."""
    from edgepipe.fit.plot import write_pareto_svg

    out_dir.mkdir(parents=True, exist_ok=True)
    shipped = result.shipped.number if result.shipped else None
    svg = write_pareto_svg(out_dir / "pareto.svg", result.records, shipped, f"edgepipe fit: {result.target}")
    result.doc["plot"] = svg.name if svg else None
    write_json(out_dir / "fit.json", result.doc)
