"""Several targets at once: one artifact set per target, built in parallel processes.

Each target builds into ``<out>/<target>/`` in its own process (spawned, not
forked: TensorFlow does not survive a fork, and each conversion leaks memory
that a process exit returns). The combined exit code is the worst one: 2 if
any target had bad input, else 1 if any check failed, else 0.
``<out>/report.html`` puts the targets' checks side by side.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from edgepipe.errors import EXIT_OK, EXIT_USAGE, EdgepipeError
from edgepipe.pipeline.progress import SILENT, Progress

MAX_WORKERS = 2  # the default of edgepipe.api.build_many and `build -j`


@dataclass(frozen=True)
class BuildJob:
    """The arguments of one :func:`edgepipe.api.build` call, picklable for a worker process."""

    target: str                 # a profile name or a path to a profile
    name: str                   # the resolved profile's name
    out: Path
    config: str | None = None
    example: str | None = None
    overrides: dict = field(default_factory=dict)
    targets_dir: str | None = None
    cache: Any = None
    lock_timeout: float = 30.0


@dataclass
class TargetOutcome:
    """One target's build: its result, or the usage error that stopped it."""

    target: str
    out_dir: Path
    result: Any = None          # pipeline.build.BuildResult
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return self.result.exit_code if self.result is not None else EXIT_USAGE

    def to_dict(self) -> dict:
        return {"target": self.target, "out_dir": str(self.out_dir), "exit_code": self.exit_code,
                "status": "error" if self.error else ("passed" if self.exit_code == EXIT_OK else "failed"),
                "error": self.error, "report": self.result.report.to_dict() if self.result else None}


@dataclass
class MultiBuildResult:
    """Every target's outcome, in the order the targets were given."""

    outcomes: list[TargetOutcome]

    @property
    def exit_code(self) -> int:
        return max((o.exit_code for o in self.outcomes), default=EXIT_OK)

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_OK

    def to_dict(self) -> dict:
        return {"schema": "edgepipe.multi-build/1", "exit_code": self.exit_code,
                "status": {0: "passed", 1: "failed"}.get(self.exit_code, "error"),
                "targets": [o.to_dict() for o in self.outcomes]}


def run_jobs(jobs: list[BuildJob], workers: int = MAX_WORKERS, progress: Progress = SILENT) -> MultiBuildResult:
    """Build every job; in parallel processes when there is more than one."""
    workers = max(1, min(workers, len(jobs), os.cpu_count() or 1))
    if workers == 1:
        return _compared(MultiBuildResult([build_job(job) for job in jobs]))
    outcomes: dict[int, TargetOutcome] = {}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_stdout_to_stderr)
    with pool, progress.task(f"building {len(jobs)} targets ({workers} processes)", len(jobs)) as update:
        futures = {pool.submit(build_job, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            update(len(outcomes))
    return _compared(MultiBuildResult([outcomes[i] for i in range(len(jobs))]))


def _compared(result: MultiBuildResult) -> MultiBuildResult:
    """Also write ``<out>/report.html``: every target's checks side by side."""
    from edgepipe.report_html.publish import write_comparison

    write_comparison(result.outcomes)
    return result


def build_job(job: BuildJob) -> TargetOutcome:
    """One target; a usage error becomes the outcome instead of stopping the others."""
    from edgepipe.api import build

    try:
        result = build(job.target, job.config, example=job.example, out=job.out, overrides=job.overrides,
                       targets_dir=job.targets_dir, cache=job.cache, lock_timeout=job.lock_timeout)
    except EdgepipeError as exc:
        return TargetOutcome(job.name, job.out, error=str(exc))
    return TargetOutcome(job.name, job.out, result)


def _stdout_to_stderr() -> None:
    """Workers share the terminal: keep stdout for the parent's one JSON document."""
    os.dup2(2, 1)
