"""The search: Optuna's constrained TPE over the knobs, in batches, then fine-tuning for the best few.

The objective is what the shipping rule ranks by (:mod:`edgepipe.fit.choose`):
the accuracy damage (share of the tolerance used), or with ``--prefer`` a
budget's use; the constraints are every budget and the tolerance, set on
each trial (``Trial.set_constraint``, Optuna 5), which the TPE sampler
reads to prefer candidates that meet them. Searching the Pareto front of
damage and every budget instead spent the few candidates a fit has on
small, damaged models that never ship (on the mini-Xception it shipped 0.8
points less agreement than a uniform grid). The fronts are still drawn from
every candidate. The first candidate is always the model as it
is, built alone, so a fit knows whether the model already fits (and never
ships something worse than it without reason) and how far over each budget
it is. From then on each batch starts with the candidates at the budgets'
edge (:mod:`edgepipe.fit.boundary`: per metric, the least pruning predicted
to fit, refined as candidates are measured) and the sampler fills the rest.

Candidates run a batch at a time on the executor (local processes or a Ray
cluster). Reproducible and resumable by construction:

- each batch's sampler is a new ``TPESampler`` seeded from the fit's seed
  and the batch number, over a study rebuilt from the journal, so what a
  batch proposes depends only on the seed and the finished candidates
  (not on which machine ran them or whether the search was interrupted);
- the discrete space makes the sampler repeat itself: a proposal already
  measured is told its figures and the sampler asked again (up to
  ``MAX_REPEATS`` times), so the trial budget buys new candidates; one
  accepted anyway is not built again: its record is reused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from edgepipe.errors import EXIT_INTERNAL, EdgepipeError, InternalError
from edgepipe.fit.boundary import edge_candidates
from edgepipe.fit.journal import Journal
from edgepipe.fit.score import UNBOUNDED, Score
from edgepipe.fit.space import Knobs, params_of, suggest
from edgepipe.fit.trial import BuildRequest, TrialJob, TrialRecord, run_trial
from edgepipe.pipeline.progress import SILENT, Progress

#: Random candidates before TPE models the results (a third of a short search, at most 8).
MAX_STARTUP = 8
#: Proposals of candidates already measured, told back to the sampler before one is accepted anyway.
MAX_REPEATS = 16


@dataclass(frozen=True)
class SearchPlan:
    request: BuildRequest
    baseline: Knobs
    fixed_per_channel: bool | None
    trials: int
    batch: int
    seed: int
    finetune_top: int
    finetune_epochs: int
    prefer: str = "accuracy"
    first_allowed: bool = True


def run_search(plan: SearchPlan, journal: Journal, executor, progress: Progress = SILENT) -> list[TrialRecord]:
    """Every candidate of the search and of the fine-tuning phase, in order (resumed ones included)."""
    records = journal.records()
    while len(_search_records(records)) < plan.trials:
        batch = _propose(plan, records)
        progress.stage(f"fit: candidates {batch[0].number + 1}-{batch[-1].number + 1} of {plan.trials}")
        fresh = _run(batch, records, journal, executor)
        _require_baseline(fresh)
        records += fresh
    if not any(r.phase == "finetune" for r in records):
        tune = _finetune_jobs(plan, records, journal)
        if tune:
            progress.stage(f"fit: fine-tuning the best {len(tune)} candidates")
            records += _run(tune, records, journal, executor)
    return records


def _search_records(records: list[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.phase == "search"]


def _propose(plan: SearchPlan, records: list[TrialRecord]) -> list[TrialJob]:
    """The next batch: the baseline alone first, then candidates at the budgets' edge, then the sampler's."""
    optuna = _optuna()
    done = _search_records(records)
    study = _replayed(plan, done, objectives=_objective_names(plan))
    index = 0 if not done else 1 + (len(done) - 1) // plan.batch
    study.sampler = _sampler(optuna, plan, seed=plan.seed * 1_000_003 + index)
    size = 1 if not done else plan.batch
    for knobs in [plan.baseline] if not done else _edges(plan, done, size):
        study.enqueue_trial(params_of(knobs))
    measured = {r.knobs: r for r in done}
    jobs: list[TrialJob] = []
    for number in range(len(done), min(plan.trials, len(done) + size)):
        knobs = _ask_new(optuna, study, plan, measured, {j.knobs for j in jobs})
        jobs.append(TrialJob(number, "search", knobs, "", plan.request))
    return jobs


def _ask_new(optuna, study, plan: SearchPlan, measured: dict, taken: set) -> Knobs:
    """The sampler's next candidate that is neither measured nor in this batch. A repeat is told its
    measured figures (one more observation for TPE; a repeat within the batch, a failure) and the
    sampler asked again, ``MAX_REPEATS`` times at most: on a small space a repeat is then accepted
    (its record is reused, not built). Deterministic, so a resumed search asks the same."""
    for _ in range(MAX_REPEATS):
        trial = study.ask()
        knobs = suggest(trial, plan.fixed_per_channel, plan.first_allowed)
        if knobs not in measured and knobs not in taken:
            return knobs
        _tell(optuna, study, trial, measured.get(knobs), _objective_names(plan))
    return knobs


def _edges(plan: SearchPlan, done: list[TrialRecord], size: int) -> list[Knobs]:
    """Candidates at the budgets' edge (:mod:`edgepipe.fit.boundary`), leaving the sampler one slot
    of a batch of two or more; only when the least damage ships (``--prefer`` wants the leanest)."""
    if plan.prefer != "accuracy":
        return []
    return edge_candidates(done, plan.baseline, plan.first_allowed)[:max(1, size - 1)]


def _run(jobs: list[TrialJob], records: list[TrialRecord], journal: Journal, executor) -> list[TrialRecord]:
    """Build what was not built before (reusing earlier records of the same knobs), journal the batch."""
    seen = {r.knobs: r for r in records if r.score is not None or r.error}
    todo = [replace(j, out=str(journal.trial_dir(j.number))) for j in jobs if j.knobs not in seen]
    results = executor.map(run_trial, todo, return_exceptions=True) if todo else []
    built = {job.number: _lost(job, r) if isinstance(r, BaseException) else r for job, r in zip(todo, results)}
    out = [built[j.number] if j.number in built else _reused(seen[j.knobs], j) for j in jobs]
    journal.append(out)
    return out


def _lost(job: TrialJob, exc: BaseException) -> TrialRecord:
    """A candidate whose worker died or raised something unexpected: its record, so the search goes on."""
    if not isinstance(exc, Exception):
        raise exc  # KeyboardInterrupt and the like stop the fit
    message = str(exc) if isinstance(exc, EdgepipeError) else f"{type(exc).__name__}: {exc}"
    return TrialRecord(job.number, job.phase, job.knobs, None, job.out, 0.0, message, EXIT_INTERNAL)


def _reused(earlier: TrialRecord, job: TrialJob) -> TrialRecord:
    record = replace(earlier, number=job.number, phase=job.phase, seconds=0.0)
    record.extra = {"same_as": earlier.number}
    return record


def _require_baseline(batch: list[TrialRecord]) -> None:
    """The model as it is must build: its error is the model's or the data's, so every candidate would fail."""
    first = batch[0]
    if first.number == 0 and first.score is None:
        error = InternalError if first.error_exit == 3 else EdgepipeError
        raise error(first.error or "the unpruned model did not build")


def _finetune_jobs(plan: SearchPlan, records: list[TrialRecord], journal: Journal) -> list[TrialJob]:
    """The best pruned candidates that meet every budget, again with fine-tuning (it changes only accuracy)."""
    if plan.finetune_top <= 0 or plan.finetune_epochs <= 0:
        return []
    fitting = [r for r in records if r.score is not None and r.knobs.prunes
               and all(not b.over for b in r.score.budgets)]
    fitting.sort(key=lambda r: (_damage(r.score), r.number))
    chosen, seen = [], set()
    for r in fitting:
        if r.knobs not in seen and len(chosen) < plan.finetune_top:
            seen.add(r.knobs)
            chosen.append(r.knobs)
    start = len(records)
    return [TrialJob(start + i, "finetune", replace(k, finetune_epochs=plan.finetune_epochs), "", plan.request)
            for i, k in enumerate(chosen)]


def _objective_names(plan: SearchPlan) -> tuple[str, ...]:
    """What the search minimises: what ships is ranked by (the damage, or the preferred budget's use)."""
    return ("damage",) if plan.prefer == "accuracy" else (plan.prefer,)


def objective_values(score: Score, objectives: tuple[str, ...]) -> list[float]:
    values = []
    for name in objectives:
        value = _damage(score) if name == "damage" else score.use(name)
        values.append(UNBOUNDED if value is None else float(value))
    return values


def constraints(score: Score) -> dict[str, float]:
    """<= 0 where met: each budget, the accuracy tolerance, and 1 per other failed check."""
    others = [n for n in score.failed if n not in {b.name for b in score.budgets}
              and n not in ("accuracy", "accuracy_vs_original")]
    return {**{b.name: b.ratio - 1.0 for b in score.budgets}, "accuracy": min(_damage(score), UNBOUNDED) - 1.0,
            "other_checks": float(len(others))}


def _damage(score: Score) -> float:
    return UNBOUNDED if score.damage is None else score.damage


def _replayed(plan: SearchPlan, done: list[TrialRecord], objectives: tuple[str, ...]):
    """A new in-memory study holding the finished candidates, told exactly as they were measured."""
    optuna = _optuna()
    study = optuna.create_study(directions=["minimize"] * len(objectives),
                                sampler=_sampler(optuna, plan, seed=0))
    for record in done:
        study.enqueue_trial(params_of(record.knobs))
        trial = study.ask()
        suggest(trial, plan.fixed_per_channel, plan.first_allowed)
        _tell(optuna, study, trial, record, objectives)
    return study


def _tell(optuna, study, trial, record: TrialRecord | None, objectives: tuple[str, ...]) -> None:
    """Tell the study a trial's figures: the record's objectives and constraints, or a failure."""
    if record is None or record.score is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    for name, value in constraints(record.score).items():
        trial.set_constraint(name, value)
    study.tell(trial, objective_values(record.score, objectives))


def _sampler(optuna, plan: SearchPlan, seed: int):
    startup = min(MAX_STARTUP, max(2, plan.trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)


def _optuna():
    """Optuna, quiet (its INFO lines would mix with --json on stdout's neighbour)."""
    from edgepipe.errors import MissingDependencyError

    try:
        import optuna
    except ImportError:
        raise MissingDependencyError("optuna", "build", "edgepipe fit") from None
    optuna.logging.set_verbosity(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna
