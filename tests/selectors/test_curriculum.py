import pytest

from instructmix.selectors.curriculum import dependency_curriculum, phase_shares, shuffled

TIERS = {"r": "base", "u": "base", "ru": "dependent", "p": "middle"}
ITEMS = ["r", "u", "ru", "p", "other"] * 60 + ["ru"] * 1  # 301 items, "other" untiered


def test_is_a_permutation_and_deterministic():
    order = dependency_curriculum(ITEMS, TIERS, bias=3.0, seed=4)
    assert sorted(order) == list(range(len(ITEMS)))
    assert order == dependency_curriculum(ITEMS, TIERS, bias=3.0, seed=4)
    assert order != dependency_curriculum(ITEMS, TIERS, bias=3.0, seed=5)


def test_phase_shares_are_biased():
    mean = {t: [0.0, 0.0, 0.0] for t in ("base", "middle", "dependent")}
    for seed in range(10):
        p1, p2, p3 = phase_shares(dependency_curriculum(ITEMS, TIERS, 3.0, seed), ITEMS, TIERS)
        assert [p["n"] for p in (p1, p2, p3)] == [101, 100, 100]
        assert p1["base"] > p3["base"] and p3["dependent"] > p1["dependent"]
        for k, p in enumerate((p1, p2, p3)):
            assert abs(p["base"] + p["middle"] + p["dependent"] - 1) < 1e-9
            assert 0 < p["base"] < 1 and 0 < p["middle"] < 1  # soft phases
            for t in mean:
                mean[t][k] += p[t] / 10
    b, m, d = mean["base"], mean["middle"], mean["dependent"]
    assert b[0] > b[1] > b[2] and d[0] < d[1] < d[2]  # monotone on average
    assert m[1] > max(m[0], m[2])  # untiered/middle items gather in the uniform phase


def test_bias_one_is_unbiased_on_average():
    gaps = []
    for seed in range(10):
        p1, _, p3 = phase_shares(dependency_curriculum(ITEMS, TIERS, 1.0, seed), ITEMS, TIERS)
        gaps.append(p1["base"] - p3["base"])
    assert abs(sum(gaps) / len(gaps)) < 0.05


def test_validation_and_shuffled():
    with pytest.raises(ValueError, match="unknown tiers"):
        dependency_curriculum(ITEMS, {"r": "first"})
    with pytest.raises(ValueError, match="bias"):
        dependency_curriculum(ITEMS, TIERS, bias=0)
    assert dependency_curriculum([], TIERS) == []
    s = shuffled(50, seed=1)
    assert sorted(s) == list(range(50)) and s == shuffled(50, seed=1) and s != shuffled(50, 2)


def test_whole_run_lays_every_pass_out_once():
    from instructmix.selectors.curriculum import whole_run

    order = whole_run(ITEMS, TIERS, 3.0, seed=1, epochs=4)
    assert sorted(order) == sorted(list(range(len(ITEMS))) * 4)
    assert order == whole_run(ITEMS, TIERS, 3.0, seed=1, epochs=4)
    assert whole_run(ITEMS, TIERS, 3.0, seed=1, epochs=1) == dependency_curriculum(
        ITEMS, TIERS, 3.0, seed=1)
