"""`BatchPicker`: chooses every global batch while the SFT loop trains (`LoopSpec.picker`).

At each step (every worker calls it alike; the loop broadcasts rank 0's choice):
1. every `reward_every` steps, the validation loss P of the current model is measured on
   held-out pool rows; the change since the last measurement rewards the last decision;
2. every `refresh_every` steps, the response loss of `refresh_rows` random candidates is
   recomputed with the current model (difficulty; cost independent of the pool size);
3. a fresh random sample of `candidates_per_cluster` rows of each cluster is scored and
   `per_cluster` rows are drawn from each cluster:
   - mode "policy" (RAISE): Plackett–Luce sampling without replacement from the policy's
     scores, keeping the log-probability of the draw (PPO's `Decision`);
   - mode "selfpaced": the rows of lowest current loss (self-paced learning).
   A cluster with fewer rows than `per_cluster` gives all it has; the batch is topped up
   with random candidates (never recorded as the policy's choice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from instructmix.selectors.rl.state import DYNAMIC, Dynamic, state_matrix

MODES = ("policy", "selfpaced")


@dataclass(frozen=True)
class PickSettings:
    mode: str
    per_cluster: int
    candidates_per_cluster: int
    refresh_every: int
    refresh_rows: int
    reward_every: int
    stage_features: bool = True
    record: bool = False  # keep every Decision (episodes; PPO needs them)


@dataclass
class BatchPicker:
    ids: list[str]
    messages: list  # chat rows of the candidates
    static: np.ndarray  # [n, d] static features (state.static_features)
    clusters: np.ndarray  # [n] cluster of each candidate
    valid_messages: list  # held-out rows whose loss is P
    settings: PickSettings
    seed: int
    policy_state: dict | None = None  # Policy.state_dict() (mode "policy")
    hidden: int = 64
    categories: list | None = None  # of the candidates (for `picked_by_window`)
    dyn: Dynamic = field(init=False)
    decisions: list = field(default_factory=list)
    valid_history: list = field(default_factory=list)  # [step, validation loss]

    def __post_init__(self):
        if self.settings.mode not in MODES:
            raise ValueError(f"picker mode {self.settings.mode!r}; expected one of {MODES}")
        self.dyn = Dynamic.empty(len(self.ids))
        self.rng = np.random.default_rng([self.seed, 11])
        self.groups = [np.flatnonzero(self.clusters == c) for c in np.unique(self.clusters)]
        self._policy = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_policy"] = None  # rebuilt from policy_state where it is unpickled
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        # Ray's object store hands arrays back read-only; the picker updates these
        self.dyn = Dynamic.from_dict(self.dyn.to_dict())

    @property
    def batch_size(self) -> int:
        return self.settings.per_cluster * len(self.groups)

    # -- the loop's protocol ------------------------------------------------------------
    def choose(self, step: int, total: int, measure) -> np.ndarray:
        s = self.settings
        if step % s.reward_every == 0:
            self._reward(step, measure)
        if step % s.refresh_every == 0:
            rows = self.rng.choice(len(self), min(s.refresh_rows, len(self)), replace=False)
            self.dyn.loss[rows] = measure([self.messages[i] for i in rows])
            self.dyn.scored_at[rows] = step
        offered = [self.rng.choice(g, min(len(g), s.candidates_per_cluster), replace=False)
                   for g in self.groups]
        rows = np.concatenate(offered)
        groups = np.concatenate([np.full(len(o), k) for k, o in enumerate(offered)])
        if s.mode == "selfpaced":
            chosen = self._lowest_loss(rows, groups)
        else:
            chosen = self._policy_choice(rows, groups, step, total)
        return self._top_up(rows[chosen])

    def commit(self, positions: np.ndarray) -> None:
        np.add.at(self.dyn.picks, np.asarray(positions, dtype=np.int64), 1)

    def batch(self, positions: np.ndarray) -> dict:
        return {"id": [self.ids[i] for i in positions],
                "messages": [self.messages[i] for i in positions]}

    def finish(self, step: int, measure) -> None:
        self._reward(step, measure)

    def state_dict(self) -> dict:
        return {"dyn": self.dyn.to_dict(), "rng": self.rng.bit_generator.state,
                "valid_history": self.valid_history}

    def load_state_dict(self, state: dict) -> None:
        self.dyn = Dynamic.from_dict(state["dyn"])
        self.rng.bit_generator.state = state["rng"]
        self.valid_history = [list(v) for v in state["valid_history"]]

    def picked_by_window(self, batches: list[list[str]], windows: int = 4) -> list[dict]:
        """Rows picked per category in `windows` equal spans of the run's steps."""
        category = dict(zip(self.ids, self.categories or [None] * len(self), strict=True))
        spans = np.array_split(np.arange(len(batches)), min(windows, max(1, len(batches))))
        out = []
        for span in spans:
            counts: dict = {}
            for step in span:
                for i in batches[step]:
                    counts[category[i]] = counts.get(category[i], 0) + 1
            out.append({"steps": [int(span[0]), int(span[-1]) + 1], "counts": counts})
        return out

    # -- internals --------------------------------------------------------------------
    def _reward(self, step: int, measure) -> None:
        loss = float(np.mean(measure(self.valid_messages)))
        if self.valid_history and self.decisions:
            self.decisions[-1].reward += self.valid_history[-1][1] - loss  # P = -loss
        self.valid_history.append([step, loss])

    def _lowest_loss(self, rows: np.ndarray, groups: np.ndarray) -> np.ndarray:
        known = self.dyn.loss[~np.isnan(self.dyn.loss)]
        loss = self.dyn.loss[rows]
        loss = np.where(np.isnan(loss), known.mean() if len(known) else 0.0, loss)
        picks = []
        for k in range(len(self.groups)):
            mine = np.flatnonzero(groups == k)
            order = mine[np.lexsort((self.rng.random(len(mine)), loss[mine]))]
            picks.append(order[: self.settings.per_cluster])
        return np.concatenate(picks)

    def _policy_choice(self, rows, groups, step: int, total: int) -> np.ndarray:
        from instructmix.selectors.rl.ppo import act

        first = self.valid_history[0][1] if self.valid_history else 1.0
        now = self.valid_history[-1][1] if self.valid_history else 1.0
        states = state_matrix(self.static, self.dyn, rows, step, total,
                              now / max(first, 1e-9), self.settings.stage_features)
        decision = act(self._the_policy(), states, groups, self.settings.per_cluster, self.rng)
        if self.settings.record:
            self.decisions.append(decision)
        return decision.chosen

    def _the_policy(self):
        if self._policy is None:
            from instructmix.selectors.rl.ppo import Policy

            self._policy = Policy(self.static.shape[1] + len(DYNAMIC), self.hidden)
            self._policy.load_state_dict(self.policy_state)
            self._policy.eval()
        return self._policy

    def _top_up(self, positions: np.ndarray) -> np.ndarray:
        short = self.batch_size - len(positions)
        if short <= 0:
            return positions
        rest = np.setdiff1d(np.arange(len(self)), positions)
        return np.concatenate([positions, self.rng.choice(rest, short, replace=False)])
