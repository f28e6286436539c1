"""RAISE selection overhead per training step, at 10k, 100k and 1M candidates, side by side.

(a) a training step: collate + forward/backward + clip + AdamW + LR schedule (the loop's
    plain-torch `Engine.step`) at global batch 32, max_seq_len 128, on the testbed's model
    (`model_factory.build_model` with `ModelConfig` defaults: GPT-2, 3 layers, 128 dims, char
    tokenizer trained on the rows; nothing downloaded);
(b) a picker step: `BatchPicker.choose` + `commit` + `batch` as the loop calls them, with
    `measure` = the real `worker_losses` on that same model (rank 0, world 1), settings of
    configs/raise.yaml's `raise` section (`--reward-every` overrides one), a real `Policy`
    with random weights. A picker block is lcm(reward_every, refresh_every) consecutive
    steps, so the model forwards of the measurements are amortised as in a real run.

Candidates: real testbed chat rows (9 categories x 1000), replicated (ids unique) up to the
pool size; their static features are `state.static_features` of the base rows (random
384-d embeddings through `Pca`, category, complexity, length: 32 + 9 + 5 = 46 columns) tiled
like the rows; cluster labels = k-means (k = 8) of their 32-d PCA part, tiled too.

Blocks alternate train, picker, picker, train, ... per pool size; every figure is the median
over repeats of a block's mean step time (each repeat is listed). `measure` is timed apart,
so the table splits the picker into its model forwards (pool-size independent) and the rest
(sampling, state, policy, Plackett–Luce, commit, batch). The one per-step line of the picker
that reads the whole pool (`state_matrix`'s mean of the known losses) is timed on its own.
Torch uses `--threads` intra-op threads (default 1 = `train.torch_threads`, what each Ray
Train worker gets). The machine is shared (2 cores, other jobs): figures are noisy.

    python bench/raise_overhead.py [--sizes 10000,100000,1000000] [--repeats 3] [--threads 1]

Measured 2026-12-05 at 74b2e80 (nothing else running; `python bench/raise_overhead.py` and
`... --reward-every 20`; docs/RESULTS.md), share of a training step at 10k / 100k / 1M
candidates:
- configs/raise.yaml (reward every 10 steps on 64 rows, 64 rows refreshed every 20):
  13.3% / 13.5% / 14.0%, of which the picker without the model forwards 1.1 / 1.2 / 1.9%;
- the defaults (reward every 20): 9.0% / 9.2% / 9.8% (1.1 / 1.1 / 1.6% without forwards).
Almost all of the cost is the forwards of the measurements (rows measured per step:
valid_rows / reward_every + refresh_rows / refresh_every), which do not depend on the pool.
An earlier setting (256 rows every 10, reward every 5: 38 rows per step) cost 30-60%.

Plan for larger pools:
- Forwards: take each trained row's loss from the training forward itself (the logits are
  there; `Engine.step` would return per-row losses for a `picker.observe`), so the refresh
  can shrink further; the reward grid can be coarser (the return telescopes).
- The one per-step pass over the whole pool is `state_matrix`'s mean of the known losses
  (0.27 ms at 1M, so about 3% of a step at 10M): cache it between refreshes.
- Checkpoints: `state_dict()` writes `Dynamic` as JSON lists (0.7 s at 1M per checkpoint);
  store it as .npy files instead.
- Memory per worker: static features 184 B/row (184 MB at 1M), `Dynamic` + clusters 40
  B/row, ids + message slots ~73 B/row here (distinct chat rows would add ~1 KB/row,
  estimated): keep rows in the Arrow table / object store and materialise only chosen and
  refreshed rows; static features in float16 or only on rank 0 (its choice is broadcast);
  past ~10M rows, draw each epoch's candidates from a reservoir of a few 100k rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instructmix.runtime import prepare  # noqa: E402

prepare()
from instructmix.config import ModelConfig, TestbedConfig, TrainConfig, load_config  # noqa: E402
from instructmix.data.complexity import complexity_score  # noqa: E402
from instructmix.data.testbed import generate  # noqa: E402
from instructmix.selectors.rl.action import kmeans  # noqa: E402
from instructmix.selectors.rl.picker import BatchPicker, PickSettings  # noqa: E402
from instructmix.selectors.rl.ppo import Policy  # noqa: E402
from instructmix.selectors.rl.state import DYNAMIC, Pca, static_features  # noqa: E402
from instructmix.training.collate import as_messages, collate  # noqa: E402
from instructmix.training.engine import Engine  # noqa: E402
from instructmix.training.model_factory import build_model, train_tokenizer  # noqa: E402
from instructmix.training.response import worker_losses  # noqa: E402

RAISE = load_config(str(Path(__file__).resolve().parents[1] / "configs" / "raise.yaml")).raise_
GLOBAL_BATCH, CLUSTERS, MAX_LEN = 32, RAISE.clusters, 128
SETTINGS = PickSettings("policy", GLOBAL_BATCH // CLUSTERS, RAISE.candidates_per_cluster,
                        RAISE.refresh_every, RAISE.refresh_rows, RAISE.reward_every)
PERIOD = math.lcm(RAISE.reward_every, RAISE.refresh_every)  # picker steps per block


def base_rows(seed: int):
    """Testbed rows (the demo pool: 9 categories x 1000), 64 validation rows, their static
    features (random 384-d embeddings) and k-means clusters."""
    train, evals = generate(seed, TestbedConfig(items_per_category=1000, eval_per_category=50))
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((len(train), 384)).astype(np.float32)
    cats = np.array([r["category"] for r in train], dtype=object)
    names = sorted(set(cats))
    complexity = np.array([complexity_score(r["messages"][0]["content"], r["meta"])
                           for r in train])
    n_tokens = np.array([sum(len(m["content"]) for m in r["messages"]) for r in train])
    static = static_features(emb, Pca.fit(emb, seed), cats, names, complexity, {}, n_tokens)
    clusters = kmeans(static[:, :32].astype(np.float64), CLUSTERS, seed)  # on the PCA part
    valid = [evals[i]["messages"]
             for i in rng.choice(len(evals), RAISE.valid_rows, replace=False)]
    return train, valid, static, clusters


def make_picker(n: int, train, valid, static, clusters, seed: int) -> BatchPicker:
    src = np.arange(n) % len(train)
    ids = [f"c{k}" for k in range(n)]
    messages = [train[i]["messages"] for i in src]
    torch.manual_seed(seed)
    policy = Policy(static.shape[1] + len(DYNAMIC), 64).state_dict()
    return BatchPicker(ids, messages, static[src], clusters[src], valid, SETTINGS, seed,
                       policy_state=policy)


def picker_memory(p: BatchPicker) -> dict:
    d = p.dyn
    return {"static_MB": p.static.nbytes / 1e6,
            "dyn_index_MB": (d.loss.nbytes + d.scored_at.nbytes + d.picks.nbytes +
                             p.clusters.nbytes + sum(g.nbytes for g in p.groups)) / 1e6,
            "ids_lists_MB": (sys.getsizeof(p.ids) + sys.getsizeof(p.messages) +
                             sum(sys.getsizeof(i) for i in p.ids)) / 1e6}


def train_block(engine, tok, rows, steps: int, rng) -> float:
    """Mean seconds of `steps` training steps on random batches of real rows."""
    batches = [[rows[i]["messages"] for i in rng.choice(len(rows), GLOBAL_BATCH, replace=False)]
               for _ in range(steps)]
    t0 = time.perf_counter()
    for b in batches:
        engine.step(collate(tok, [as_messages(m) for m in b], MAX_LEN))
    return (time.perf_counter() - t0) / steps


class Measure:
    """`worker_losses` on the model (rank 0, world 1), timing itself."""

    def __init__(self, model, tok):
        self.model, self.tok, self.seconds = model, tok, 0.0

    def __call__(self, messages):
        t0 = time.perf_counter()
        out = worker_losses(self.model, self.tok, messages, MAX_LEN, 0, 1)
        self.seconds += time.perf_counter() - t0
        return out


def picker_block(picker: BatchPicker, measure: Measure, start: int, total: int
                 ) -> tuple[float, float]:
    """(mean seconds per step, of which in `measure`) over PERIOD steps from `start`."""
    measure.seconds = 0.0
    t0 = time.perf_counter()
    for step in range(start, start + PERIOD):
        positions = picker.choose(step, total, measure)
        picker.commit(positions)
        picker.batch(positions)
    return (time.perf_counter() - t0) / PERIOD, measure.seconds / PERIOD


def known_mean_seconds(picker: BatchPicker, reps: int = 20) -> float:
    """The per-step full-pool pass of `state_matrix` (mean of the known losses)."""
    loss = picker.dyn.loss
    t0 = time.perf_counter()
    for _ in range(reps):
        known = loss[~np.isnan(loss)]
        float(known.mean()) if len(known) else 1.0
    return (time.perf_counter() - t0) / reps


def checkpoint_seconds(picker: BatchPicker) -> float:
    """`state_dict()` + json.dumps, as the loop does at every checkpoint."""
    t0 = time.perf_counter()
    json.dumps(picker.state_dict())
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeats", type=int, default=3, help="picker blocks = train blocks")
    ap.add_argument("--train-steps", type=int, default=10, help="steps per train block")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reward-every", type=int, default=None,
                    help="override configs/raise.yaml's raise.reward_every")
    args = ap.parse_args()
    if args.reward_every:
        global SETTINGS, PERIOD
        SETTINGS = dataclasses.replace(SETTINGS, reward_every=args.reward_every)
        PERIOD = math.lcm(SETTINGS.reward_every, SETTINGS.refresh_every)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    train, valid, static, clusters = base_rows(args.seed)
    tok = train_tokenizer(["\n".join(m["content"] for m in r["messages"]) for r in train],
                          "char", 512)
    model = build_model(ModelConfig(), tok, args.seed)
    tc = TrainConfig(deepspeed=False, micro_batch_size=GLOBAL_BATCH, max_seq_len=MAX_LEN)
    engine = Engine(model, tc, total_steps=10**6, world=1)
    measure = Measure(model, tok)
    rng = np.random.default_rng([args.seed, 1])
    train_block(engine, tok, train, 3, rng)  # warm-up

    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        picker = make_picker(n, train, valid, static, clusters, args.seed)
        total = 10**6
        picker_block(picker, measure, 0, total)  # warm-up (builds the policy)
        step = PERIOD
        trains, picks, forwards = [], [], []
        for r in range(args.repeats):
            order = ("train", "picker") if r % 2 == 0 else ("picker", "train")
            for what in order:
                if what == "train":
                    trains.append(train_block(engine, tok, train, args.train_steps, rng))
                else:
                    sec, fwd = picker_block(picker, measure, step, total)
                    step += PERIOD
                    picks.append(sec)
                    forwards.append(fwd)
        rest = [p - f for p, f in zip(picks, forwards, strict=True)]
        res = {"candidates": n, "train_step_ms": statistics.median(trains) * 1e3,
               "picker_ms": statistics.median(picks) * 1e3,
               "picker_forwards_ms": statistics.median(forwards) * 1e3,
               "picker_rest_ms": statistics.median(rest) * 1e3,
               "known_mean_ms": known_mean_seconds(picker) * 1e3,
               "ckpt_s": checkpoint_seconds(picker),
               **picker_memory(picker),
               "repeats_train_ms": [round(t * 1e3, 1) for t in trains],
               "repeats_picker_ms": [round(t * 1e3, 1) for t in picks],
               "repeats_share": [round(p / t, 3) for p, t in zip(picks, trains, strict=True)]}
        res["share"] = res["picker_ms"] / res["train_step_ms"]
        res["share_without_forwards"] = res["picker_rest_ms"] / res["train_step_ms"]
        results.append(res)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in res.items()}), flush=True)
        del picker
        gc.collect()

    print(f"\nRAISE picker overhead per step (global batch {GLOBAL_BATCH}, {CLUSTERS} clusters, "
          f"reward every {SETTINGS.reward_every} steps on {RAISE.valid_rows} rows, refresh of "
          f"{SETTINGS.refresh_rows} rows every {SETTINGS.refresh_every}; torch threads "
          f"{args.threads}, {args.repeats} repeats of {args.train_steps} train steps / "
          f"{PERIOD} picker steps; shared 2-core machine: noisy)")
    head = (f"{'candidates':>10} {'step ms':>8} {'picker ms':>9} {'fwd ms':>7} {'rest ms':>7} "
            f"{'share':>6} {'w/o fwd':>7} {'mean ms':>7} {'static MB':>9} {'dyn MB':>6} "
            f"{'lists MB':>8} {'ckpt s':>6}")
    print(head)
    for r in results:
        print(f"{r['candidates']:>10} {r['train_step_ms']:>8.1f} {r['picker_ms']:>9.1f} "
              f"{r['picker_forwards_ms']:>7.1f} {r['picker_rest_ms']:>7.2f} "
              f"{r['share']:>6.1%} {r['share_without_forwards']:>7.1%} "
              f"{r['known_mean_ms']:>7.3f} {r['static_MB']:>9.1f} {r['dyn_index_MB']:>6.1f} "
              f"{r['ids_lists_MB']:>8.1f} {r['ckpt_s']:>6.2f}")
    print("share = picker / train step (goal <= 10% at the demo's ~8,640 candidates); "
          "w/o fwd = the picker without measure's forwards; mean ms = state_matrix's "
          "full-pool known-loss mean (per step); ckpt s = state_dict + json.dumps "
          f"(per checkpoint). Wall {time.perf_counter() - t_start:.0f} s.")


if __name__ == "__main__":
    main()
