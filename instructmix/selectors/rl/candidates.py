"""What a picked run draws from: every usable pool row with its static features and cluster,
the held-out rows its reward is measured on, and the number of steps the budget buys.

Built once per stage from the run's artifacts (`Candidates.from_run`); `picker` makes the
`BatchPicker` of one run over all usable rows or a subset (an episode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from instructmix.config import RaiseConfig, RunConfig
from instructmix.data.complexity import complexity_score
from instructmix.layout import POOL, PROBE, RunLayout
from instructmix.selectors.rl.action import kmeans
from instructmix.selectors.rl.picker import BatchPicker, PickSettings
from instructmix.selectors.rl.state import Pca, static_features


def global_batch(cfg: RunConfig) -> int:
    return cfg.train.micro_batch_size * cfg.train.num_workers


def picked_steps(cfg: RunConfig, n_tokens: np.ndarray) -> int:
    """Optimizer steps the select budget buys a static arm (budget rows // global batch ×
    epochs); a picked arm gets as many. With a token budget, rows = budget / the mean
    tokens of the usable rows `n_tokens`."""
    sc, tc = cfg.select, cfg.train
    rows = sc.budget if sc.budget_unit == "items" else int(sc.budget / float(n_tokens.mean()))
    steps = max(1, rows // global_batch(cfg)) * tc.epochs
    return min(steps, tc.max_steps) if tc.max_steps else steps


@dataclass
class Candidates:
    pool: pa.Table
    usable: np.ndarray  # bool per pool row
    static: np.ndarray  # [pool rows, d] static features
    clusters: np.ndarray  # cluster of every pool row
    valid_messages: list  # held-out rows measuring the reward
    names: list[str]  # pool categories

    @classmethod
    def from_run(cls, cfg: RunConfig, run: RunLayout) -> Candidates:
        pool = run.read_pool()
        emb = run.read_table(POOL.shards, ["id", "embedding"]).sort_by("id")
        embedding = np.stack(emb.column("embedding").to_numpy(zero_copy_only=False))
        held = run.validation_ids()
        ids = pool.column("id").to_pylist()
        usable = np.array([i not in held for i in ids], dtype=bool)
        if not held:
            raise ValueError("raise/selfpaced need held-out validation rows from the probe "
                             f"stage ({run.path(PROBE.validation_ids)} is missing or empty)")
        cats = np.asarray(pool.column("category").to_pylist(), dtype=object)
        names = sorted(set(cats))
        instr = [next((t["content"] for t in m if t["role"] == "user"), "")
                 for m in pool.column("messages").to_pylist()]
        complexity = np.array([complexity_score(t, meta) for t, meta in
                               zip(instr, pool.column("meta").to_pylist(), strict=True)])
        deps = run.read_json(PROBE.dependencies, {}) or {}
        static = static_features(embedding, Pca.fit(embedding[usable], cfg.seed), cats, names,
                                 complexity, deps.get("tiers") or {},
                                 np.asarray(pool.column("n_tokens")))
        clusters = _clusters(cfg.raise_, embedding, cats, names, cfg.seed)
        rng = np.random.default_rng([cfg.seed, 13])
        valid = np.flatnonzero(~usable)
        valid = rng.choice(valid, min(len(valid), cfg.raise_.valid_rows), replace=False)
        messages = pool.column("messages").take(pa.array(np.sort(valid))).to_pylist()
        return cls(pool, usable, static, clusters, messages, names)

    def picker(self, cfg: RunConfig, mode: str, rows: np.ndarray | None, seed: int,
               policy_state: dict | None = None, record: bool = False) -> BatchPicker:
        """A picker over pool rows `rows` (None: every usable row)."""
        rc = cfg.raise_
        rows = np.flatnonzero(self.usable) if rows is None else np.asarray(rows)
        labels = np.unique(self.clusters[rows], return_inverse=True)[1]
        per_cluster = max(1, global_batch(cfg) // (labels.max() + 1))
        if len(rows) < global_batch(cfg):
            raise ValueError(f"{mode}: {len(rows)} candidate rows are fewer than one global "
                             f"batch of {global_batch(cfg)}")
        settings = PickSettings(mode, per_cluster, rc.candidates_per_cluster, rc.refresh_every,
                                rc.refresh_rows, rc.reward_every, rc.stage_features, record)
        pool = self.pool.take(pa.array(rows))
        return BatchPicker(pool.column("id").to_pylist(), pool.column("messages").to_pylist(),
                           self.static[rows], labels, self.valid_messages, settings, seed,
                           policy_state, rc.hidden, pool.column("category").to_pylist())


def _clusters(rc: RaiseConfig, embedding: np.ndarray, cats: np.ndarray, names: list[str],
              seed: int) -> np.ndarray:
    if rc.clusters == "categories":
        index = {c: k for k, c in enumerate(names)}
        return np.array([index[c] for c in cats], dtype=np.int64)
    return kmeans(np.asarray(embedding, dtype=np.float64), rc.clusters, seed)
