import numpy as np

from instructmix.selectors.iid import iid_order


def test_items_budget_is_a_uniform_sample_without_repeats():
    order = iid_order(np.ones(1000, dtype=int), 300, "items", seed=1)
    assert len(order) == 300 == len(set(order.tolist()))
    assert np.array_equal(order, iid_order(np.ones(1000, dtype=int), 300, "items", seed=1))
    assert not np.array_equal(order, iid_order(np.ones(1000, dtype=int), 300, "items", seed=2))


def test_token_budget_is_never_exceeded():
    tokens = np.random.default_rng(0).integers(1, 50, size=500)
    order = iid_order(tokens, 2000, "tokens", seed=0)
    assert tokens[order].sum() <= 2000 and len(order) > 40
