"""Several targets at once: one artifact set per target, built in parallel processes or on a Ray cluster.

Each target builds into ``<out>/<target>/`` in a worker process of
:mod:`edgepipe.scale` (spawned, not forked: TensorFlow does not survive a fork,
and each conversion leaks memory that a process exit returns), or as a Ray
task with ``ray_address`` (``--ray ADDRESS``); the outcomes are gathered into
one :class:`MultiBuildResult` either way. The combined exit code is the worst
one: 2 if any target had bad input, else 1 if any check failed, else 0. A
worker lost while building a target (a signal, a native crash, its node gone)
or an internal error ends the command with that one error (exit 3) once the
other targets have ended.
``<out>/report.html`` puts the targets' checks side by side.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepipe.errors import EXIT_OK, EXIT_USAGE, EdgepipeError, InternalError
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

    @property
    def label(self) -> str:
        """How a lost worker's error names this job."""
        return f"target {self.name}"


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
    executor: dict = field(default_factory=dict)  # where the targets were built: edgepipe.scale's describe()

    @property
    def exit_code(self) -> int:
        return max((o.exit_code for o in self.outcomes), default=EXIT_OK)

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_OK

    def to_dict(self) -> dict:
        return {"schema": "edgepipe.multi-build/1", "exit_code": self.exit_code,
                "status": {0: "passed", 1: "failed"}.get(self.exit_code, "error"),
                "executor": self.executor, "targets": [o.to_dict() for o in self.outcomes]}


def run_jobs(jobs: list[BuildJob], workers: int = MAX_WORKERS, progress: Progress = SILENT,
             ray_address: str | None = None) -> MultiBuildResult:
    """Build every job: in this process when one worker is enough, else in worker processes, or on Ray.

    Every job runs even when one's worker is lost or it raises an internal error;
    then the first such error (in the order of the jobs) is raised: exit 3, one line.
    """
    from edgepipe.scale import executor_for

    if ray_address is None:
        workers = max(1, min(workers, len(jobs), os.cpu_count() or 1))
        if workers == 1:
            where = {"kind": "local", "host": socket.gethostname(), "workers": 1}
            return _compared(MultiBuildResult([build_job(job) for job in jobs], where))
    done = []
    with executor_for(ray_address, workers) as ex:
        where = ex.describe()
        on = f"on the Ray cluster at {ray_address}" if ray_address else f"({workers} processes)"
        with progress.task(f"building {len(jobs)} targets {on}", len(jobs)) as update:
            values = ex.map(build_job, jobs, return_exceptions=True,
                            on_done=lambda i, value: (done.append(i), update(len(done))))
    outcomes = [_outcome(job, value, ray_address) for job, value in zip(jobs, values)]
    return _compared(MultiBuildResult(outcomes, where))


def _outcome(job: BuildJob, value: Any, ray_address: str | None) -> TargetOutcome:
    """A worker's TargetOutcome; a lost worker or an internal error is raised."""
    if isinstance(value, BaseException):
        raise value
    if ray_address and value.result is not None and not (Path(job.out) / "report.json").is_file():
        return TargetOutcome(job.name, job.out, error=f"built on the Ray cluster at {ray_address}, but {job.out} "
                             "is not on this machine (--out must be a folder every node shares at the same path)")
    return value


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
    except InternalError:
        raise
    except EdgepipeError as exc:
        return TargetOutcome(job.name, job.out, error=str(exc))
    return TargetOutcome(job.name, job.out, result)
