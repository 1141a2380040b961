"""Candidates at the budgets' edge: the least pruning predicted to fit, from what was measured (no TensorFlow)."""

from edgepipe.fit.boundary import edge_candidates
from edgepipe.fit.score import BudgetUse, Score
from edgepipe.fit.space import Knobs
from edgepipe.fit.trial import TrialRecord

BASE = Knobs(1.0, "macs", False, True)


def _record(number: int, knobs: Knobs, latency_use: float, ram_use: float = 0.5) -> TrialRecord:
    budgets = (BudgetUse("latency", latency_use, 1.0, "s"), BudgetUse("ram", ram_use, 1.0, "B"))
    score = Score(0 if max(latency_use, ram_use) <= 1 else 1, "", budgets, 0.1)
    return TrialRecord(number, "search", knobs, score, "", 1.0)


def _keeps(edges, metric, first=False):
    return [k.keep for k in edges if k.metric == metric and k.first == first]


def test_from_the_model_alone_use_is_taken_to_fall_in_proportion_to_keep():
    edges = edge_candidates([_record(0, BASE, latency_use=1.43)], BASE)
    # 1 / 1.43 = 0.699: 0.65 is the largest keep on the grid predicted to fit, for every metric;
    # latency is the only budget exceeded, so its metric comes first
    assert [(k.metric, k.first, k.keep, k.reconstruct, k.per_channel) for k in edges] == [
        ("latency", False, 0.65, True, True), ("latency", True, 0.65, True, True), ("macs", False, 0.65, True, True),
        ("macs", True, 0.65, True, True), ("size", False, 0.65, True, True), ("size", True, 0.65, True, True),
        ("ram", False, 0.65, True, True), ("ram", True, 0.65, True, True)]
    # a project that lists its own exclusions keeps the first convolution whole
    assert {k.first for k in edge_candidates([_record(0, BASE, latency_use=1.43)], BASE, first_allowed=False)} == {False}


def test_the_tightest_budget_decides():
    edges = edge_candidates([_record(0, BASE, latency_use=1.1, ram_use=2.0)], BASE)
    assert _keeps(edges, "macs") == [0.5]
    # both budgets are exceeded, RAM most: the ram families, then the latency ones, then the rest
    assert [k.metric for k in edges] == ["ram", "ram", "latency", "latency", "macs", "macs", "size", "size"]


def test_between_a_fit_and_a_miss_the_edge_is_interpolated():
    records = [_record(0, BASE, 1.43), _record(1, Knobs(0.5, "latency", True, True), 0.8),
               _record(2, Knobs(0.7, "latency", True, True), 1.1)]
    # u = 1 at 0.5 + 0.2 * 0.2 / 0.3 = 0.633: 0.60
    assert _keeps(edge_candidates(records, BASE), "latency") == [0.6]


def test_nothing_when_the_edge_is_found_or_the_model_already_fits():
    found = [_record(0, BASE, 1.43), _record(1, Knobs(0.6, "macs", True, True), 0.95),
             _record(2, Knobs(0.65, "macs", True, True), 1.02)]
    assert _keeps(edge_candidates(found, BASE), "macs") == []
    assert edge_candidates([_record(0, BASE, 0.9)], BASE) == []


def test_below_two_misses_the_edge_is_extrapolated_along_their_line():
    records = [_record(0, BASE, 1.43), _record(1, Knobs(0.65, "size", True, True), 1.2)]
    # through (0.65, 1.2) and (1.0, 1.43): use 1 at 0.65 - 0.2 / 0.657 = 0.346 -> 0.30 on the grid
    assert _keeps(edge_candidates(records, BASE), "size") == [0.3]
    records.append(_record(2, Knobs(0.3, "size", True, True), 1.05))
    # through (0.3, 1.05) and (0.65, 1.2): 0.3 - 0.05 / 0.429 = 0.18, below the least keep searched: 0.20
    assert _keeps(edge_candidates(records, BASE), "size") == [0.2]


def test_a_family_that_does_not_lower_the_binding_budget_gets_no_more_candidates():
    records = [_record(0, BASE, 0.5, ram_use=1.11), _record(1, Knobs(0.9, "macs", True, True), 0.45, ram_use=1.11),
               _record(2, Knobs(0.65, "macs", True, True, first=True), 0.4, ram_use=1.05)]
    edges = edge_candidates(records, BASE)
    assert _keeps(edges, "macs") == []            # RAM stays at 1.11 without the first convolution
    # through (0.65, 1.05) and (1.0, 1.11): 0.65 - 0.05 / 0.171 = 0.358 -> 0.35
    assert _keeps(edges, "macs", first=True) == [0.35]


def test_failed_candidates_are_not_proposed_again():
    failed = TrialRecord(1, "search", Knobs(0.65, "macs", True, True), None, "", 0.0, "boom", 3)
    edges = edge_candidates([_record(0, BASE, 1.43), failed], BASE)
    assert _keeps(edges, "macs") == [0.6]


def test_an_unpruned_proposal_is_one_candidate_per_weight_scale():
    import optuna

    from edgepipe.fit.space import suggest

    trial = optuna.trial.FixedTrial({"keep": 1.0, "metric": "latency", "reconstruct": True, "per_channel": False,
                                     "first": True})
    assert suggest(trial, None) == Knobs(1.0, "macs", False, False)


def test_a_batch_holds_no_candidate_already_measured_and_the_same_records_propose_the_same():
    from edgepipe.fit.search import SearchPlan, _propose

    plan = SearchPlan(request=None, baseline=BASE, fixed_per_channel=True, trials=40, batch=8, seed=3,
                      finetune_top=0, finetune_epochs=0, first_allowed=False)
    records = [_record(0, BASE, 0.9, ram_use=0.8)]  # it fits: no edge candidates, the sampler proposes all
    for batch in range(4):
        jobs = _propose(plan, records)
        knobs = [j.knobs for j in jobs]
        assert len(set(knobs)) == len(knobs) and not set(knobs) & {r.knobs for r in records}
        assert knobs == [j.knobs for j in _propose(plan, records)]
        records += [_record(j.number, j.knobs, 0.5 + 0.01 * j.number) for j in jobs]
