"""Selection strategies on a synthetic pool with a hand-written interaction matrix."""

import json

import numpy as np
import pytest

from instructmix.config import SelectConfig
from instructmix.layout import RunLayout
from instructmix.probes.design import largest_remainder
from instructmix.selectors.strategies import choose

CATS = ["a", "b", "c"]


def _pool(per_cat=50):
    cats = np.array([c for c in CATS for _ in range(per_cat)], dtype=object)
    return cats, np.full(len(cats), 10), np.ones(len(cats), dtype=bool)


def _probe_dir(tmp_path, gamma):
    """A run folder whose probe stage wrote Γ = `gamma` and a three-tier DAG."""
    (tmp_path / "probe").mkdir(exist_ok=True)
    (tmp_path / "probe" / "interactions.json").write_text(json.dumps(
        {"categories": CATS, "gamma": gamma, "lo": gamma, "hi": gamma}))
    (tmp_path / "probe" / "dependencies.json").write_text(json.dumps(
        {"tiers": {"a": "base", "b": "middle", "c": "dependent"}}))
    return RunLayout(tmp_path)


def test_largest_remainder_meets_total_and_caps():
    counts = largest_remainder(np.array([5.0, 3.0, 2.0]), 17, np.array([100, 100, 1]))
    assert counts.sum() == 17 and counts[2] <= 1 and counts[0] > counts[1]
    assert largest_remainder(np.ones(3), 500, np.array([10, 20, 30])).tolist() == [10, 20, 30]


def test_milp_moves_budget_to_the_helpful_category(tmp_path):
    # a helps c (0.8), b hurts c (-0.5); equal alpha: weights a 1.8, b 0.5, c 1.0
    gamma = [[1, 0, 0], [0, 1, 0], [0.8, -0.5, 1]]
    cats, tokens, usable = _pool()
    sc = SelectConfig(strategy="milp", budget=60)
    choice = choose("milp", "none", cats, tokens, usable, sc, _probe_dir(tmp_path, gamma), 0)
    assert choice.mixture["counts"] == {"a": 50, "b": 0, "c": 10}
    assert choice.mixture["status"] == "optimal"
    # a trust region of 10% keeps it near the proportional 20/20/20: moves 6 items b -> a
    sc = SelectConfig(strategy="milp", budget=60, trust_region=0.1)
    choice = choose("milp", "none", cats, tokens, usable, sc, RunLayout(tmp_path), 0)
    assert choice.mixture["counts"] == {"a": 26, "b": 14, "c": 20}
    reasons = choice.reasons
    assert len(reasons) == len(cats) and sum(r.startswith("milp: one of") for r in reasons) == 60


def test_curriculum_order_and_held_out_rows(tmp_path):
    cats, tokens, usable = _pool()
    usable[:5] = False  # held out for probe scoring
    sc = SelectConfig(strategy="proportional", budget=90, curriculum_bias=20)
    choice = choose("proportional", "dependency", cats, tokens, usable, sc,
                    _probe_dir(tmp_path, np.eye(3).tolist()), 0)
    order = choice.order
    assert len(order) == 90 and usable[order].all()
    assert all(r.startswith("held out") for r in choice.reasons[:5])
    first, last = cats[order[:30]], cats[order[-30:]]
    assert (first == "a").mean() > 0.5 > (last == "a").mean()
    assert (last == "c").mean() > 0.5 > (first == "c").mean()


def test_strategy_needing_probes_names_the_missing_stage(tmp_path):
    cats, tokens, usable = _pool()
    with pytest.raises(FileNotFoundError, match="probe stage"):
        choose("milp", "none", cats, tokens, usable, SelectConfig(budget=30),
               RunLayout(tmp_path), 0)


def test_robust_mixture_uses_the_lower_bound_and_infeasibility_is_named(tmp_path):
    gamma = [[1, 0, 0], [0, 1, 0], [0.8, -0.5, 1]]
    lo = [[1, 0, 0], [0, 1, 0], [-1.0, -0.5, 1]]  # a's help to c is uncertain
    _probe_dir(tmp_path, gamma)
    (tmp_path / "probe" / "interactions.json").write_text(json.dumps(
        {"categories": CATS, "gamma": gamma, "lo": lo, "hi": gamma}))
    cats, tokens, usable = _pool()
    sc = SelectConfig(strategy="milp", budget=60, robust=True)
    # robust weights: a 1 - 1 = 0, b 0.5, c 1 -> c full, then b
    run = RunLayout(tmp_path)
    assert choose("milp", "none", cats, tokens, usable, sc, run, 0).mixture["counts"] == {
        "a": 0, "b": 10, "c": 50}
    with pytest.raises(ValueError, match="floors need 120 items but budget is 60"):
        choose("milp", "none", cats, tokens, usable,
               SelectConfig(strategy="milp", budget=60, floor_per_category=40), run, 0)


def test_curriculum_spans_the_whole_run_not_each_epoch(tmp_path):
    cats, tokens, usable = _pool()
    sc = SelectConfig(strategy="proportional", budget=90, curriculum_bias=20)
    run = _probe_dir(tmp_path, np.eye(3).tolist())
    choice = choose("proportional", "dependency", cats, tokens, usable, sc, run, 0, epochs=3)
    stream = choice.stream
    # every selected row exactly once per pass, all passes in one stream
    assert len(stream) == 270
    assert sorted(np.unique(stream, return_counts=True)[1]) == [3] * 90
    assert set(stream) == set(choice.order)
    # phase 1 is the start of training: the base tier fills the first third of the run,
    # not the first third of every pass (a per-epoch replay would end each pass with "c")
    thirds = [cats[stream[k * 90:(k + 1) * 90]] for k in range(3)]
    assert (thirds[0] == "a").mean() > 0.5 > (thirds[2] == "a").mean()
    assert (thirds[2] == "c").mean() > 0.5 > (thirds[0] == "c").mean()
    assert (cats[stream[60:90]] == "c").mean() < 0.5  # the end of pass 1 is not phase 3
    assert choice.mixture["stream_epochs"] == 3
    single = choose("proportional", "dependency", cats, tokens, usable, sc, run, 0)
    assert single.stream is None
    assert choose("proportional", "none", cats, tokens, usable, sc, run, 0,
                  epochs=3).stream is None
