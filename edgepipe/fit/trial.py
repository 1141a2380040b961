"""One candidate of a fit: an ordinary build into the search's state folder, scored from its report.

:func:`run_trial` is what a worker runs (a local process or a Ray task), so
it takes and returns plain picklable values and never raises for what a
candidate can cause: a build error (a prune target the model cannot reach,
a converter failure) is the candidate's result, recorded with its message,
and the search goes on. Only the baseline's error stops a fit (the model or
data is bad for every candidate), which :mod:`edgepipe.fit.search` decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from edgepipe.errors import EdgepipeError
from edgepipe.fit.score import Score, score_report
from edgepipe.fit.space import Knobs


@dataclass(frozen=True)
class BuildRequest:
    """What every candidate shares: the project, the target and the user's own overrides."""

    target: str
    config: str | None  # the project config's path (a bundled example's, too), or None
    overrides: dict
    targets_dir: str | None
    cache: object  # pipeline.cache.CacheSettings


@dataclass(frozen=True)
class TrialJob:
    number: int
    phase: str
    knobs: Knobs
    out: str
    request: BuildRequest


@dataclass
class TrialRecord:
    """A finished candidate: its knobs, its score (None when the build raised) and where it was built."""

    number: int
    phase: str
    knobs: Knobs
    score: Score | None
    out: str
    seconds: float
    error: str | None = None
    error_exit: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"number": self.number, "phase": self.phase, "knobs": self.knobs.to_dict(),
                "label": self.knobs.label(), "score": self.score.to_dict() if self.score else None,
                "out": self.out, "seconds": round(self.seconds, 2), "error": self.error,
                "error_exit": self.error_exit, **self.extra}

    @classmethod
    def from_dict(cls, doc: dict) -> "TrialRecord":
        return cls(doc["number"], doc["phase"], Knobs.from_dict(doc["knobs"]),
                   Score.from_dict(doc["score"]) if doc.get("score") else None, doc["out"], doc["seconds"],
                   doc.get("error"), doc.get("error_exit"))


def build_overrides(request: BuildRequest, knobs: Knobs) -> dict:
    """The user's overrides with the candidate's settings on top."""
    from edgepipe.config.project import load_project

    project = load_project(request.config, request.overrides)
    return {**request.overrides, **knobs.overrides(project)}


def run_trial(job: TrialJob) -> TrialRecord:
    """Build one candidate and score it; an error of this candidate becomes its record, not an exception."""
    from edgepipe import api

    started = time.monotonic()
    req = job.request
    try:
        result = api.build(req.target, req.config, out=job.out,
                           overrides=build_overrides(req, job.knobs), targets_dir=req.targets_dir, cache=req.cache)
    except EdgepipeError as exc:
        return TrialRecord(job.number, job.phase, job.knobs, None, job.out, time.monotonic() - started,
                           str(exc), exc.exit_code)
    score = score_report(result.report.to_dict())
    return TrialRecord(job.number, job.phase, job.knobs, score, job.out, time.monotonic() - started)
