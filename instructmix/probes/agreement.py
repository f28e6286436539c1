"""How well two Γ estimates agree (e.g. a proxy model's probes against the target's):
over the off-diagonal entries both identify, the share with the same sign, the share
where both intervals exclude 0 and agree, and the rank correlation of γ."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from instructmix.probes.interactions import gamma_matrix as _matrix


def gamma_agreement(a: dict, b: dict) -> dict:
    """`a`, `b`: two probe stages' interactions (PROBE.interactions) over the same categories."""
    cats = sorted(a["categories"])
    if sorted(b["categories"]) != cats:
        raise ValueError(f"the estimates cover different categories: {cats} and "
                         f"{sorted(b['categories'])}")
    ga, gb = _matrix(a, "gamma", cats), _matrix(b, "gamma", cats)
    both = np.isfinite(ga) & np.isfinite(gb) & ~np.eye(len(cats), dtype=bool)
    n = int(both.sum())
    out = {"categories": cats, "entries": n,
           "unidentified": int((~np.eye(len(cats), dtype=bool)).sum()) - n}
    if n == 0:
        return dict(out, sign_agreement=None, strict_agreement=None, strict_entries=0,
                    spearman=None)
    x, y = ga[both], gb[both]
    out["sign_agreement"] = float(np.mean(np.sign(x) == np.sign(y)))

    def excludes_zero(inter):
        lo, hi = _matrix(inter, "lo", cats)[both], _matrix(inter, "hi", cats)[both]
        return np.where(lo > 0, 1, np.where(hi < 0, -1, 0))

    sa, sb = excludes_zero(a), excludes_zero(b)
    strict = (sa != 0) & (sb != 0)
    out["strict_entries"] = int(strict.sum())
    out["strict_agreement"] = float(np.mean(sa[strict] == sb[strict])) if strict.any() else None
    out["spearman"] = float(spearmanr(x, y).statistic) if n >= 3 else None
    return out
