"""RAISE's action: cluster the candidates, then draw a few per cluster by Plackett–Luce.

The acquisition network gives every candidate a score s. Candidates are grouped (K-means on
their states enforces diversity); within each group `per_group` items are drawn without
replacement, each draw picking item i among those still left with probability
exp(s_i) / sum_{j left} exp(s_j) (sequential Plackett–Luce). Groups are independent.

The draw uses the Gumbel top-k trick: add independent Gumbel(0, 1) noise to the scores and
take the k largest; the order of the perturbed scores has exactly the sequential law above.
The log-probability of an ordered draw c_1..c_m in one group is
    sum_t [ s_{c_t} - logsumexp(s_j : j in the group, j not in c_1..c_{t-1}) ],
and the log-probability of the whole action is the sum over groups. It is computed once in
numpy (float64, when acting) and once in torch (differentiable, when learning), from the same
mask of the items still "live" at each pick.
"""

from __future__ import annotations

import numpy as np
import torch


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """int64 cluster labels in [0, k') for the rows of x (k' <= min(k, len(x))).

    k-means++ seeding from numpy Generator(seed), then at most `iters` Lloyd rounds (an empty
    cluster keeps its centre). Labels are renumbered 0..k'-1 so that every label is used;
    fewer than k clusters come back when there are fewer distinct points. Deterministic.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    centers = _kmeans_pp(x, min(k, len(x)), rng)
    labels = _nearest(x, centers)
    for _ in range(iters):
        centers = _recentre(x, labels, centers)
        new = _nearest(x, centers)
        if np.array_equal(new, labels):
            break
        labels = new
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int64).reshape(-1)


def _sq_dist(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """[n, k] squared Euclidean distances (expanded form: no [n, k, d] temporary)."""
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d2, 0.0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding; stops early when every point already sits on a centre."""
    centers = [x[rng.integers(len(x))]]
    d2 = _sq_dist(x, centers[0][None, :])[:, 0]
    while len(centers) < k:
        total = d2.sum()
        if total <= 0.0:
            break
        pick = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
        centers.append(x[min(pick, len(x) - 1)])
        d2 = np.minimum(d2, _sq_dist(x, centers[-1][None, :])[:, 0])
    return np.stack(centers)


def _nearest(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return _sq_dist(x, centers).argmin(1)


def _recentre(x: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    sums = np.zeros_like(centers)
    np.add.at(sums, labels, x)
    counts = np.bincount(labels, minlength=len(centers))
    out = centers.copy()
    used = counts > 0
    out[used] = sums[used] / counts[used, None]
    return out


def plackett_luce_sample(scores: np.ndarray, groups: np.ndarray, per_group: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Draw min(per_group, group size) positions per group (ascending group id) without
    replacement, ∝ exp(score), by Gumbel top-k.

    Returns the chosen positions (int64; group after group, each group's in draw order) and
    the log-probability of exactly that ordered draw.
    """
    scores, groups = _check(scores, groups)
    if per_group < 0:
        raise ValueError(f"per_group must be >= 0, got {per_group}")
    perturbed = scores + rng.gumbel(size=len(scores))
    picks = []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        order = np.argsort(-perturbed[idx], kind="stable")[:per_group]
        picks.append(idx[order])
    chosen = np.concatenate(picks).astype(np.int64) if picks else np.zeros(0, np.int64)
    return chosen, _log_prob_np(scores, groups, chosen)


def plackett_luce_log_prob(scores: torch.Tensor, groups, chosen) -> torch.Tensor:
    """Differentiable log-probability (a torch scalar) of the ordered draw `chosen` (as
    returned by `plackett_luce_sample`) under the scores; the group of each chosen item is
    read from `groups`, order matters within a group, groups are independent."""
    groups = _as_numpy(groups).astype(np.int64)
    chosen = _as_numpy(chosen).astype(np.int64)
    if scores.ndim != 1 or groups.shape != tuple(scores.shape):
        raise ValueError("scores must be 1-D and groups of the same length")
    live = torch.from_numpy(_live_mask(groups, chosen)).to(scores.device)
    masked = scores.unsqueeze(0).masked_fill(~live, float("-inf"))
    index = torch.from_numpy(chosen).to(scores.device)
    return scores[index].sum() - torch.logsumexp(masked, dim=1).sum()


def _as_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _check(scores: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups).astype(np.int64)
    if scores.ndim != 1 or groups.shape != scores.shape:
        raise ValueError("scores must be 1-D and groups of the same length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    return scores, groups


def _live_mask(groups: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """[m, n] bool: item j is still available at pick t (same group as chosen[t], and not
    picked before t). Picks of other groups never share the group, so one running 'taken'
    mask serves every group."""
    n = len(groups)
    if chosen.size and (chosen.min() < 0 or chosen.max() >= n):
        raise ValueError("chosen positions out of range")
    if len(np.unique(chosen)) != len(chosen):
        raise ValueError("chosen positions repeat")
    picked = chosen[:, None] == np.arange(n)[None, :]
    before = (np.cumsum(picked, axis=0) - picked) > 0
    same = groups[None, :] == groups[chosen][:, None]
    return same & ~before


def _log_prob_np(scores: np.ndarray, groups: np.ndarray, chosen: np.ndarray) -> float:
    if chosen.size == 0:
        return 0.0
    masked = np.where(_live_mask(groups, chosen), scores[None, :], -np.inf)
    top = masked.max(axis=1)
    lse = top + np.log(np.exp(masked - top[:, None]).sum(axis=1))
    return float((scores[chosen] - lse).sum())
