"""RAISE's state: one feature row per candidate instruction (METHODS §2).

Static columns, computed once per pool (`static_features`):
- semantics: the pool embedding projected on its first 32 principal axes (`Pca`, fitted
  once on the pool; zero-padded when the embedding is smaller);
- category (one-hot over the pool's categories), complexity (log1p of the Tree-Instruct node
  count, / its pool maximum), dependency tier (one-hot base/middle/dependent, zeros without
  a DAG), length (log1p tokens / log1p of the longest row).
Dynamic columns, per step (`state_matrix`):
- training stage: step / total steps, validation loss / the validation loss at step 0;
- difficulty: the row's response loss under the current model / the mean of known losses
  (refreshed every `refresh_every` steps on a sample; rows never scored get the mean), and
  how stale it is (steps since it was scored / total; 1 when never scored);
- availability: log1p(times already picked).
Without `stage_features` (the ablation) the two stage columns are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PCA_DIMS = 32
TIER_NAMES = ("base", "middle", "dependent")
DYNAMIC = ("step_share", "valid_loss_rel", "loss_rel", "loss_staleness", "log_picks")


@dataclass
class Pca:
    mean: np.ndarray
    axes: np.ndarray  # [dims, embedding dim]

    @classmethod
    def fit(cls, x: np.ndarray, seed: int, dims: int = PCA_DIMS, sample: int = 20000) -> Pca:
        """Principal axes of (a random sample of at most `sample` rows of) `x`."""
        x = np.asarray(x, dtype=np.float64)
        if len(x) > sample:
            x = x[np.random.default_rng(seed).choice(len(x), sample, replace=False)]
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        return cls(mean, vt[:dims])

    def project(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), PCA_DIMS), dtype=np.float32)
        z = (np.asarray(x, dtype=np.float64) - self.mean) @ self.axes.T
        scale = np.sqrt(max(1e-12, float((z[:, :1] ** 2).mean()))) if len(z) else 1.0
        out[:, : z.shape[1]] = z / scale  # the first axis at unit scale
        return out


def static_features(embedding: np.ndarray, pca: Pca, categories: np.ndarray,
                    names: list[str], complexity: np.ndarray, tiers: dict[str, str],
                    n_tokens: np.ndarray) -> np.ndarray:
    """[n, 32 + len(names) + 5] float32: semantics, category, complexity, tier, length."""
    n = len(categories)
    cat = np.zeros((n, len(names)), dtype=np.float32)
    index = {c: k for k, c in enumerate(names)}
    cat[np.arange(n), [index[c] for c in categories]] = 1.0
    comp = np.log1p(np.asarray(complexity, dtype=np.float64))
    comp = comp / max(1e-9, float(comp.max(initial=0.0)))
    tier = np.zeros((n, len(TIER_NAMES)), dtype=np.float32)
    if tiers:
        slot = [TIER_NAMES.index(tiers.get(c, "middle")) for c in categories]
        tier[np.arange(n), slot] = 1.0
    length = np.log1p(np.asarray(n_tokens, dtype=np.float64))
    length = length / max(1e-9, float(length.max(initial=0.0)))
    return np.concatenate([pca.project(embedding), cat, comp[:, None].astype(np.float32),
                           tier, length[:, None].astype(np.float32)], axis=1)


def state_dim(n_categories: int) -> int:
    return PCA_DIMS + n_categories + 1 + len(TIER_NAMES) + 1 + len(DYNAMIC)


@dataclass
class Dynamic:
    """What changes while training, for every candidate of one run."""

    loss: np.ndarray  # last measured response loss, NaN = never scored
    scored_at: np.ndarray  # step of that measurement, -1 = never
    picks: np.ndarray  # times picked so far

    @classmethod
    def empty(cls, n: int) -> Dynamic:
        return cls(np.full(n, np.nan), np.full(n, -1, dtype=np.int64),
                   np.zeros(n, dtype=np.int64))

    def to_dict(self) -> dict:
        return {"loss": [None if np.isnan(v) else float(v) for v in self.loss],
                "scored_at": self.scored_at.tolist(), "picks": self.picks.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Dynamic:
        return cls(np.array([np.nan if v is None else v for v in d["loss"]], dtype=float),
                   np.asarray(d["scored_at"], dtype=np.int64),
                   np.asarray(d["picks"], dtype=np.int64))


def state_matrix(static: np.ndarray, dyn: Dynamic, rows: np.ndarray, step: int, total: int,
                 valid_rel: float, stage_features: bool) -> np.ndarray:
    """The policy's input for candidate `rows` at `step`: static columns + DYNAMIC."""
    known = dyn.loss[~np.isnan(dyn.loss)]
    mean = float(known.mean()) if len(known) else 1.0
    loss = dyn.loss[rows]
    loss = np.where(np.isnan(loss), mean, loss) / max(mean, 1e-9)
    at = dyn.scored_at[rows]
    stale = np.where(at < 0, 1.0, (step - at) / max(1, total))
    stage = [step / max(1, total), valid_rel] if stage_features else [0.0, 0.0]
    dynamic = np.column_stack([np.full(len(rows), stage[0]), np.full(len(rows), stage[1]),
                               loss, stale, np.log1p(dyn.picks[rows])])
    return np.concatenate([static[rows], dynamic.astype(np.float32)], axis=1)
