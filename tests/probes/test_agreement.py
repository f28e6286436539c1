import math

import pytest

from instructmix.probes.agreement import gamma_agreement

NAN = None


def inter(cats, gamma, lo=None, hi=None):
    lo = lo or [[v - 0.1 if v is not None else None for v in row] for row in gamma]
    hi = hi or [[v + 0.1 if v is not None else None for v in row] for row in gamma]
    return {"categories": cats, "gamma": gamma, "lo": lo, "hi": hi}


def test_agreement_by_hand():
    a = inter(["a", "b", "c"], [[1, 0.5, -0.3], [0.2, 1, 0.05], [-0.4, 0.3, 1]])
    # the same categories in another order: b, a, c; one sign flipped (a<-c: -0.3 -> +0.2)
    b = inter(["b", "a", "c"], [[1, 0.1, 0.02], [0.4, 1, 0.2], [0.6, -0.5, 1]])
    out = gamma_agreement(a, b)
    # pairs (row, col) in a's terms: ab .5/.4, ac -.3/.2, ba .2/.1, bc .05/.02, ca -.4/-.5,
    # cb .3/.6 -> 5 of 6 signs agree
    assert out["entries"] == 6 and out["unidentified"] == 0
    assert out["sign_agreement"] == pytest.approx(5 / 6)
    # intervals +-0.1 exclude 0 where |γ| > 0.1 in both: ab, ac, ca, cb (ba: b's .1 does not)
    assert out["strict_entries"] == 4 and out["strict_agreement"] == pytest.approx(3 / 4)
    # ranks of a: .5 -.3 .2 .05 -.4 .3 -> 6 2 4 3 1 5; of b: .4 .2 .1 .02 -.5 .6 -> 5 4 3 2 1 6
    d2 = sum((p - q) ** 2 for p, q in zip([6, 2, 4, 3, 1, 5], [5, 4, 3, 2, 1, 6], strict=True))
    assert out["spearman"] == pytest.approx(1 - 6 * d2 / (6 * 35))


def test_unidentified_entries_are_left_out_and_counted():
    a = inter(["a", "b"], [[1, NAN], [0.3, 1]])
    b = inter(["a", "b"], [[1, 0.2], [-0.3, 1]])
    out = gamma_agreement(a, b)
    assert out["entries"] == 1 and out["unidentified"] == 1
    assert out["sign_agreement"] == 0.0 and out["spearman"] is None
    none = gamma_agreement(inter(["a", "b"], [[1, NAN], [NAN, 1]]), b)
    assert none["entries"] == 0 and none["sign_agreement"] is None
    assert not math.isnan(out["strict_agreement"])


def test_different_categories_are_refused():
    with pytest.raises(ValueError, match="different categories"):
        gamma_agreement(inter(["a", "b"], [[1, 0], [0, 1]]), inter(["a", "c"], [[1, 0], [0, 1]]))
