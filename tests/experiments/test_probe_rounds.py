"""Rounds of probing and solving: a probe's scores come from a planted, saturating response
to the items of each category (so Γ changes with the mixture it is probed around); the
MILP, the estimator and the select stage's solve are the real ones."""

import numpy as np
import pytest

from instructmix.config import ProbesConfig, RunConfig, SelectConfig
from instructmix.experiments.probe_rounds import run_rounds
from instructmix.layout import PROBE, RunLayout
from instructmix.probes.design import centre_counts, plan
from instructmix.probes.estimate import estimate
from instructmix.selectors.strategies import choose, pool_facts

CATS = ["a", "b", "c"]
# effect of items of j (column) on ability i (row): b helps a, b hurts c
PLANTED = np.array([[1.0, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, -0.4, 1.0]])


def _scores(counts: dict, seed: int) -> dict:
    n = np.array([counts.get(c, 0) for c in CATS], dtype=float)
    acc = 0.1 + 0.1 * PLANTED @ np.log1p(n / 20.0)
    acc += np.random.default_rng(seed).normal(0, 1e-4, len(CATS))
    return dict(zip(CATS, acc.tolist(), strict=True))


def _records(probes: list[dict], cats: np.ndarray) -> list[dict]:
    out = []
    for p in probes:
        counts = {c: int((cats[p["rows"]] == c).sum()) for c in CATS}
        acc = _scores(counts, p["seed"])
        out.append({"name": p["name"], "probe": p["probe"], "seed": p["seed"],
                    "counts": counts, "token_accuracy": acc,
                    "loss": {c: 1 - v for c, v in acc.items()}, "steps": 1,
                    "train_tokens": 10 * len(p["rows"]), "seconds": 0.1})
    return out


TOKENS = {"a": 10, "b": 20, "c": 30}


def _setup(rounds: int, tolerance: float = 0.0, tokens: bool = False):
    cats = np.array([c for c in CATS for _ in range(400)], dtype=object)
    usable = np.ones(len(cats), dtype=bool)
    budget = {"budget": 12000, "budget_unit": "tokens"} if tokens else {"budget": 600}
    cfg = RunConfig.model_validate({
        "select": {"strategy": "milp", "trust_region": 0.1, "rounds": rounds,
                   "round_tolerance": tolerance, **budget},
        "probes": {"design": "intervention", "base_per_category": 30, "add_per_category": 20,
                   "seeds": 2, "score": "token_accuracy", "min_self_effect": 0.0}})
    return cfg, cats, usable


def _run(cfg, cats, usable):
    pc = cfg.probes
    first, _ = plan(cats, usable, pc, cfg.seed)
    records = _records(first, cats)
    est = estimate(records, CATS, pc, None)
    facts = pool_facts(cats, np.array([TOKENS[c] for c in cats]), usable, cfg.select)
    seen = []

    def run_probes(probes, name):
        seen.append((name, probes))
        return _records(probes, cats)

    return (*run_rounds(cfg, est, records, facts, cats, usable, run_probes, None), seen)


def test_each_round_probes_around_the_last_mixture_and_moves_within_the_trust_region():
    cfg, cats, usable = _setup(rounds=3)
    est, rounds, spent, seen = _run(cfg, cats, usable)
    assert [r["round"] for r in rounds] == [1, 2, 3] and [n for n, _ in seen] == ["round2",
                                                                                   "round3"]
    assert rounds[0]["centre"] == {"a": 200, "b": 200, "c": 200}  # proportional
    for prev, r in zip(rounds, rounds[1:], strict=False):
        assert r["centre"] == prev["counts"]  # a round starts where the last one moved to
        # its base mixture has the centre's shares at D0's size (90 items)
        shares = np.array([r["centre"][c] for c in CATS]) / 600
        assert sum(r["base"].values()) == 90
        assert np.abs(np.array([r["base"][c] for c in CATS]) - 90 * shares).max() <= 1
    for r in rounds:
        assert sum(r["counts"].values()) == 600
        assert r["moved_share"] <= 0.1 + 1e-9 and r["gain"] >= -1e-9
    # b helps a more than it hurts c: every round moves budget to b
    b = [r["centre"]["b"] for r in rounds] + [rounds[-1]["counts"]["b"]]
    assert b == sorted(b) and b[-1] == 200 + 3 * 60
    # the later rounds' probes: one base and one intervention per category, per seed
    names = [p["name"] for _, probes in seen for p in probes]
    assert len(spent) == len(names) == 2 * 2 * 4 and all(n.startswith("r") for n in names)
    assert est.interactions["gamma"] == rounds[-1]["gamma"]


def test_rounds_stop_when_a_move_gains_too_little():
    cfg, cats, usable = _setup(rounds=5, tolerance=10.0)
    _, rounds, _, seen = _run(cfg, cats, usable)
    assert len(rounds) == 2 and len(seen) == 1 and "round_tolerance=10" in rounds[-1]["stopped"]


@pytest.mark.parametrize("tokens", [False, True])
def test_the_select_stage_reproduces_the_last_rounds_mixture(tmp_path, tokens):
    cfg, cats, usable = _setup(rounds=3, tokens=tokens)
    est, rounds, _, _ = _run(cfg, cats, usable)
    lay = RunLayout(tmp_path)
    (tmp_path / "probe").mkdir()
    lay.write_json(PROBE.interactions, est.interactions)
    lay.write_json(PROBE.rounds, {"rounds": rounds})
    n_tokens = np.array([TOKENS[c] for c in cats])
    choice = choose("milp", "none", cats, n_tokens, usable, cfg.select, lay, 0)
    assert choice.mixture["counts"] == rounds[-1]["counts"] != rounds[0]["counts"]
    for r in rounds:  # the share moved is in the budget's unit (tokens: token-weighted)
        assert 0 < r["moved_share"] <= 0.1 + 1e-6


def test_centre_counts_keep_shares_and_leave_rows_to_add():
    pc = ProbesConfig(base_per_category=30, add_per_category=20)
    out = centre_counts(CATS, np.array([0.5, 0.3, 0.2]), np.array([40, 400, 400]), pc)
    # a is capped at 40 - 20 (its intervention needs 20 rows left); b and c share the rest
    assert out == {"a": 20, "b": 42, "c": 28}
    with pytest.raises(ValueError):
        SelectConfig(rounds=0)


def test_rounds_need_milp_and_a_trust_region():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as e:
        RunConfig.model_validate({"select": {"strategy": "regmix", "rounds": 2}})
    line = next(x for x in str(e.value).splitlines() if "select.rounds" in x)
    assert "'regmix'" in line and "trust_region" in line
    RunConfig.model_validate({"select": {"strategy": "milp", "rounds": 2, "trust_region": 0.1}})
