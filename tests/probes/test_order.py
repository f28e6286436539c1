"""Order probes: the plan (matched rows and steps), the pre-filter, the edge rule, and one
probe stage on Ray Tune with `probes.dependencies: order`."""

import json

import numpy as np
import pytest

from instructmix.config import ProbesConfig
from instructmix.probes.dependencies import dag_from_edges
from instructmix.probes.design import base_mixture, extra_rows
from instructmix.probes.order import (
    candidates,
    interval,
    order_edges,
    per_seed_effects,
    plan_order,
    typical_own_effect,
)

CATS = ["reverse", "upper", "rev_upper", "parity"]


def _pool(per_category=30):
    cats = np.array([c for c in CATS for _ in range(per_category)], dtype=object)
    return cats, np.ones(len(cats), dtype=bool)


def test_prefilter_keeps_pairs_with_positive_gamma_both_directions_and_caps():
    # row i = ability, column j = trained; CATS = reverse, upper, rev_upper, parity
    g = np.array([[1.0, -0.2, -0.3, np.nan],
                  [-0.1, 1.0, -0.5, -0.1],
                  [-0.2, 0.4, 1.0, -0.1],
                  [0.05, np.nan, -0.3, np.nan]])
    d = np.array([[0.1, -0.02, -0.03, 0.0],
                  [-0.01, 0.1, -0.05, -0.01],
                  [-0.02, 0.04, 0.1, -0.01],
                  [0.001, 0.0, -0.003, 0.0]])
    pairs, notes = candidates(g, d, CATS, cap=10)
    got = [(p["base"], p["dependent"]) for p in pairs]
    # pairs with γ > 0 in some direction only (0, negative, NaN dropped), both directions
    # probed, the pair with the largest raw Δ first
    assert got == [("upper", "rev_upper"), ("rev_upper", "upper"),
                   ("reverse", "parity"), ("parity", "reverse")]
    assert pairs[1]["gamma"] == -0.5 and pairs[0]["delta"] == 0.04
    assert notes[0].startswith("2 of 12 directed pairs")
    capped, notes = candidates(g, d, CATS, cap=3)  # one pair (two directions) fits
    assert [(p["base"], p["dependent"]) for p in capped] == got[:2]
    assert "max_order_pairs = 3" in notes[-1] and "('reverse', 'parity')" in notes[-1]
    assert candidates(np.eye(4), np.eye(4), CATS, cap=5)[0] == []


def test_plan_rows_are_matched_in_size_and_steps():
    cats, usable = _pool()
    pc = ProbesConfig(base_per_category=10, add_per_category=8, seeds=2, epochs=3)
    pairs = [{"base": "reverse", "dependent": "rev_upper", "gamma": 0.7},
             {"base": "upper", "dependent": "rev_upper", "gamma": 0.4},
             {"base": "rev_upper", "dependent": "reverse", "gamma": 0.3}]
    probes, notes = plan_order(cats, usable, pc, seed=0, pairs=pairs)
    assert notes == []
    # per seed: one alone arm per dependent (shared), one first-j arm per pair
    assert len(probes) == 2 * (2 + 3)
    by_name = {p["name"]: p for p in probes}
    for s in (0, 1):
        fresh = extra_rows(cats, usable, pc, 0, s)
        for p in (p for p in probes if p["role"] == "first" and p["seed"] == s):
            j, i = p["base"], p["dependent"]
            alone = by_name[p["alone"]]
            assert alone["role"] == "alone" and alone["dependent"] == i and alone["seed"] == s
            n = 8 * 3  # block rows x passes
            # same rows, so the same steps at any batch size; the i block identical and last
            assert len(p["rows"]) == len(alone["rows"]) == 2 * n
            assert np.array_equal(p["rows"][n:], alone["rows"][n:])
            assert sorted(p["rows"][n:]) == sorted(np.tile(fresh[i], 3))
            # first-j: j's rows first, each seen once per pass
            assert set(cats[p["rows"][:n]]) == {j}
            assert sorted(p["rows"][:n]) == sorted(np.tile(fresh[j], 3))
            for k in range(3):  # every pass is a permutation of the block
                assert sorted(p["rows"][k * 8:(k + 1) * 8]) == sorted(fresh[j])
            # alone: a neutral mix of the same size, none of i, spread over the others
            filler = cats[alone["rows"][:n]]
            assert i not in set(filler)
            counts = [int((filler == c).sum()) for c in CATS if c != i]
            assert max(counts) - min(counts) <= 3  # 8 rows over 3 categories, x 3 passes
            # fresh rows: none of D0 (new to a model warm-started on D0)
            d0 = set(base_mixture(cats, usable, pc, 0, s).tolist())
            assert not (set(p["rows"].tolist()) | set(alone["rows"].tolist())) & d0
    again, _ = plan_order(cats, usable, pc, seed=0, pairs=pairs)
    assert all(np.array_equal(a["rows"], b["rows"]) for a, b in zip(probes, again, strict=True))


def test_small_category_gets_its_own_matched_alone_arm():
    cats, usable = _pool()
    usable[np.flatnonzero(cats == "upper")[13:]] = False  # upper: 13 usable, 3 outside D0
    pc = ProbesConfig(base_per_category=10, add_per_category=8, seeds=1, epochs=1)
    pairs = [{"base": "reverse", "dependent": "rev_upper", "gamma": 0.7},
             {"base": "upper", "dependent": "rev_upper", "gamma": 0.4}]
    probes, _ = plan_order(cats, usable, pc, seed=0, pairs=pairs)
    first = {p["base"]: p for p in probes if p["role"] == "first"}
    alone = {p["name"]: p for p in probes if p["role"] == "alone"}
    assert len(alone) == 2
    for j, n in (("reverse", 8), ("upper", 3)):
        assert first[j]["block"] == n and len(first[j]["rows"]) == n + 8
        assert len(alone[first[j]["alone"]]["rows"]) == n + 8


def _edges(per_seed, scale=0.2, threshold=0.1, ci=0.9):
    rows, notes = order_edges(per_seed, scale, ci, threshold)
    return {(r["base"], r["dependent"]): r for r in rows}, notes


def test_edge_rule_finds_the_prerequisite_and_not_the_reverse():
    per_seed = {("reverse", "rev_upper"): [0.08, 0.11, 0.09],  # clearly helps, every seed
                ("rev_upper", "reverse"): [0.04, -0.05, 0.02]}  # interval contains 0
    rows, notes = _edges(per_seed)
    fwd, rev = rows[("reverse", "rev_upper")], rows[("rev_upper", "reverse")]
    assert fwd["edge"] and fwd["lo"] > 0 and fwd["per_seed"] == [0.08, 0.11, 0.09]
    assert fwd["effect_gamma_units"] == pytest.approx(np.mean([0.08, 0.11, 0.09]) / 0.2)
    assert not rev["edge"] and rev["lo"] <= 0 <= rev["hi"]
    assert "contains 0" in rev["reason"] and notes == []


def test_no_edge_when_interval_contains_zero_or_effect_is_small():
    rows, _ = _edges({("a", "b"): [0.1, -0.1, 0.05, -0.04]})
    assert not rows[("a", "b")]["edge"]
    rows, _ = _edges({("a", "b"): [0.01, 0.012, 0.011]}, scale=0.5)  # 0.022 x the scale
    assert rows[("a", "b")]["lo"] > 0 and not rows[("a", "b")]["edge"]
    rows, notes = _edges({("a", "b"): [0.05, 0.06]}, scale=float("nan"))  # nothing learnt
    assert not rows[("a", "b")]["edge"] and notes
    rows, notes = _edges({("a", "b"): [0.05]})  # one seed: no interval
    assert rows[("a", "b")]["edge"] and np.isnan(rows[("a", "b")]["lo"]) and notes
    assert all(np.isnan(interval([1.0], 0.9)))


def test_scale_is_the_typical_own_effect():
    delta = np.diag([0.02, 0.08, 0.1, -0.01, np.nan]) + 0.5 * (1 - np.eye(5))
    assert typical_own_effect(delta) == pytest.approx(0.08)
    assert np.isnan(typical_own_effect(-np.eye(3)))


def test_both_directions_make_a_cycle_broken_at_the_weaker():
    rows, _ = _edges({("a", "b"): [0.2, 0.22, 0.21], ("b", "a"): [0.1, 0.11, 0.12]},
                     scale=1.0)
    edges = [(r["base"], r["dependent"], r["effect_gamma_units"]) for r in rows.values()
             if r["edge"]]
    dag = dag_from_edges(["a", "b"], edges, 0.1)
    assert [(b, d) for b, d, _ in dag.edges] == [("a", "b")]
    assert dag.removed[0]["base"] == "b" and dag.tiers == {"a": "base", "b": "dependent"}


def test_per_seed_effects_pair_first_with_its_alone_arm():
    def rec(name, role, base, dep, seed, acc, alone=None):
        return {"name": name, "role": role, "base": base, "dependent": dep, "seed": seed,
                "alone": alone, "token_accuracy": {dep: acc}, "loss": {dep: 1 - acc}}

    records = [rec("al0", "alone", None, "b", 0, 0.5), rec("al1", "alone", None, "b", 1, 0.4),
               rec("f0", "first", "a", "b", 0, 0.6, "al0"),
               rec("f1", "first", "a", "b", 1, 0.45, "al1")]
    assert per_seed_effects(records, "token_accuracy")[("a", "b")] == pytest.approx(
        [0.1, 0.05])
    assert per_seed_effects(records, "loss")[("a", "b")] == pytest.approx([0.1, 0.05])


def test_probe_stage_runs_order_probes_on_tune(ray_local, tmp_path):
    from instructmix.pipeline import run_all
    from tests.conftest import tiny_config

    run = tmp_path / "run"
    cfg = tiny_config(
        run, pool={"testbed": {"items_per_category": 40, "eval_per_category": 2,
                               "categories": CATS[:3]}},
        probes={"design": "intervention", "base_per_category": 8, "add_per_category": 8,
                "seeds": 2, "epochs": 1, "micro_batch_size": 4, "valid_per_category": 6,
                "warm_start_epochs": 1, "score": "loss", "dependencies": "order",
                "max_order_pairs": 2},
        select={"strategy": "milp", "budget": 48})
    summary = run_all(cfg, stop_after="probe")["probe"]["summary"]

    deps = json.loads((run / "probe" / "dependencies.json").read_text())
    probes = json.loads((run / "probe" / "probes.json").read_text())
    cost = json.loads((run / "probe" / "cost.json").read_text())
    assert deps["estimator"] == "order" and set(deps["tiers"]) == set(CATS[:3])
    assert {"edges", "removed", "threshold", "notes", "asymmetry_edges"} <= set(deps)
    pairs = deps["order_probes"]
    assert 1 <= len(pairs) <= 2
    for p in pairs:  # every probed pair: effect, interval, per-seed values, edge or not
        assert {"effect", "lo", "hi", "per_seed", "edge", "gamma"} <= set(p)
        assert len(p["per_seed"]) == 2
    assert any(p["gamma"] > 0 for p in pairs) and deps["typical_own_effect"] > 0
    assert {(p["dependent"], p["base"]) for p in pairs} == {
        (p["base"], p["dependent"]) for p in pairs}  # both directions of every pair
    assert len(deps["planted_edges"]) == 2
    # the order probes ran as Tune trials, from each seed's warm start, in the given order
    order = probes["order_trials"]
    assert len(order) == cost["order_trials"] and cost["order_trials"] >= 4
    results = list((run / "probe" / "tune" / "order").glob("*/result.json"))
    assert len(results) == len(order)
    params = [json.loads(f.read_text())["trial"] for f in
              (run / "probe" / "tune" / "order").glob("*/params.json")]
    assert {p["model_path"] for p in params} == {str(run / "probe" / "warm" / f"s{s}")
                                                for s in (0, 1)}
    assert all(p["train"]["epochs"] == 1 for p in params)
    steps = {t["name"]: t["steps"] for t in order}
    assert all(steps[t["name"]] == steps[t["alone"]] for t in order if t["role"] == "first")
    assert cost["probe_train_tokens"] > cost["order_train_tokens"] > 0
    assert summary["dependencies"] == "order"
