"""Report section of the policy stage (RAISE, METHODS §2) and of a final run whose batches
were picked while it trained: the reward curve and the PPO statistics per round, what
training the policy cost against the final run, and the final run's validation loss and
categories picked over its steps.

`raise_section(data, strategy)` is the page's section, `raise_json(data)` what REPORT.json
keeps of it (the same numbers)."""

from __future__ import annotations

import math
from collections import Counter

from instructmix.config import PICKED
from instructmix.layout import POLICY, POOL, TRAIN
from instructmix.report.blocks import details, figure, heading, na, note, section, table
from instructmix.report.figures import line_chart, stacked_bars
from instructmix.report.fmt import NA, finite, integer, num, seconds, text
from instructmix.report.inputs import (
    RunData,
    absent,
    not_run,
    problems_of,
    seconds_of,
    summary_of,
)

TITLE = "RAISE policy (policy stage)"
WINDOWS = 10  # the final run's steps in windows of ~1/WINDOWS of the run
NOT_IN_POOL = "not in the pool"
PICKED_BY = {"raise": "raise: the policy trained here chose every batch",
             "selfpaced": "selfpaced: the rows of lowest current loss in every cluster"}


def _mean(values) -> float | None:
    vals = [f for f in map(finite, values) if f is not None]
    return sum(vals) / len(vals) if vals else None


def round_returns(rounds: list[dict]) -> list[dict]:
    """Per round: {round, mean (of the episodes' returns), returns (one per episode)}."""
    out = []
    for k, r in enumerate(rounds):
        returns = [e.get("return") for e in r["episodes"]]
        out.append({"round": r.get("round", k), "mean": _mean(returns), "returns": returns})
    return out


def _reward_figure(rounds: list[dict]) -> str:
    per = round_returns(rounds)
    px = [p["round"] for p in per for _ in p["returns"]]
    py = [x for p in per for x in p["returns"]]
    return line_chart({"mean return of the round's episodes": ([p["round"] for p in per],
                                                                [p["mean"] for p in per])},
                      points={"return of one episode": (px, py)},
                      title="RAISE reward curve: episode return per PPO round",
                      xlabel="PPO round", ylabel="return (validation loss decrease)")


def _ppo_table(rounds: list[dict]) -> dict:
    rows = []
    for p, r in zip(round_returns(rounds), rounds, strict=True):
        ppo = r.get("ppo") if isinstance(r.get("ppo"), dict) else {}
        rows.append([p["round"], len(r["episodes"]), len(r.get("failed") or []),
                     num(p["mean"], 4), num(_mean(e.get("final_valid_loss")
                                                  for e in r["episodes"]), 4),
                     num(ppo.get("policy_loss"), 4), num(ppo.get("value_loss"), 4),
                     num(ppo.get("approx_kl"), 4), num(ppo.get("clip_fraction"), 3),
                     ppo.get("decisions")])
    return table(["round", "episodes", "failed episodes", "mean return",
                  "mean final validation loss", "policy loss", "value loss", "approx KL",
                  "clip fraction", "decisions"], rows,
                 caption="PPO statistics of the update after each round's episodes: policy "
                 "loss = clipped surrogate loss (lower = the update raised the probability of "
                 "better-than-expected decisions), value loss = squared error of the value "
                 "head against the returns, approx KL = mean KL divergence between the "
                 "policy before and after the update, clip fraction = share of decisions "
                 "whose probability ratio was clipped, decisions = batches the policy chose "
                 "in the round. Failed episodes are not in the update.")


def _episode_details(rounds: list[dict]) -> list[dict]:
    episodes = [[r.get("round", k), e.get("name"), num(e.get("return"), 4),
                 num(e.get("first_valid_loss"), 4), num(e.get("final_valid_loss"), 4),
                 e.get("steps"), integer(e.get("train_tokens")), seconds(e.get("seconds"))]
                for k, r in enumerate(rounds) for e in r["episodes"]]
    failed = [[r.get("round", k), f.get("trial"), text(f.get("error")), f.get("path")]
              for k, r in enumerate(rounds) for f in r.get("failed") or []
              if isinstance(f, dict)]
    out = [details(f"every episode ({len(episodes)})", [table(
        ["round", "episode", "return", "first validation loss", "final validation loss",
         "steps", "tokens trained", "seconds"], episodes)])]
    if failed:
        out.append(details(f"failed episodes ({len(failed)})", [table(
            ["round", "trial", "error", "trial folder"], failed)]))
    return out


def policy_blocks(data: RunData) -> list[dict]:
    rounds = data.rounds
    if rounds is None:
        return [not_run(data, "policy", POLICY.rounds)]
    blocks = problems_of(data, POLICY.rounds)
    if not rounds:
        return [*blocks, na("no round of the policy stage recorded")]
    return [
        *blocks,
        note("Each PPO round runs episodes in parallel: an episode is a short fine-tune of "
             "the start model on its own random subset of the pool, every batch chosen by "
             "the current policy. Reward of a decision = decrease of the validation loss "
             "(on rows held out by the probe stage) since the previous measurement, so an "
             "episode's return = its first minus its final validation loss: higher is "
             "better. Line = mean over the round's episodes; dots = single episodes."),
        figure(_reward_figure(rounds)),
        _ppo_table(rounds),
        *_episode_details(rounds),
    ]


def final_run(data: RunData) -> dict:
    """{steps, tokens, seconds} of the final run: its last logged step and training tokens
    (cumulative, all workers) and the train stage's wall-clock seconds."""
    last = next((h for h in reversed(data.history or []) if isinstance(h, dict)), {})
    steps = last.get("step", summary_of(data, "train").get("steps"))
    return {"steps": steps, "tokens": last.get("tokens"), "seconds": seconds_of(data, "train")}


def _ratio(a, b) -> float | None:
    a, b = finite(a), finite(b)
    return a / b if a is not None and b else None


def cost_ratios(data: RunData) -> dict:
    """{measure: {policy, final_run, ratio}} of the policy's training against the final
    run ({} without a policy cost)."""
    cost, run = data.policy_cost, final_run(data)
    if cost is None:
        return {}
    pairs = {"steps": (cost.get("episode_steps"), run["steps"]),
             "tokens": (cost.get("episode_train_tokens"), run["tokens"]),
             "episode_seconds": (cost.get("episode_seconds"), run["seconds"]),
             "stage_seconds": (seconds_of(data, "policy"), run["seconds"])}
    return {k: {"policy": a, "final_run": b, "ratio": _ratio(a, b)} for k, (a, b) in
            pairs.items()}


def cost_blocks(data: RunData) -> list[dict]:
    if data.policy_cost is None:
        return [heading("Cost of training the policy"), absent(data, POLICY.cost)]
    c, r = data.policy_cost, cost_ratios(data)

    def times(k: str) -> str:
        return NA if r[k]["ratio"] is None else f"{num(r[k]['ratio'], 2)}×"

    return [heading("Cost of training the policy"), table(
        ["measure", f"policy training ({text(c.get('rounds'))} rounds, "
                    f"{text(c.get('episodes'))} episodes, {text(c.get('failed_episodes'))} "
                    "failed)", "final run", "policy / final run"],
        [["optimizer steps", integer(r["steps"]["policy"]), integer(r["steps"]["final_run"]),
          times("steps")],
         ["tokens trained", integer(r["tokens"]["policy"]), integer(r["tokens"]["final_run"]),
          times("tokens")],
         ["seconds: episodes' training vs. train stage", seconds(c.get("episode_seconds")),
          seconds(r["episode_seconds"]["final_run"]), times("episode_seconds")],
         ["seconds: policy stage vs. train stage (wall clock)",
          seconds(r["stage_seconds"]["policy"]), seconds(r["stage_seconds"]["final_run"]),
          times("stage_seconds")]],
        caption="policy training = every episode of every round, summed (failed episodes "
        "not counted); final run = the train stage's run (its last logged step, its "
        "training tokens over all workers, the stage's wall-clock seconds). Tokens are "
        "non-padding tokens of the training batches in both. The episodes' seconds add up "
        "each episode's own training time although episodes run in parallel; the policy "
        "stage's wall-clock seconds include Ray start-up and the PPO updates. policy / final "
        "run = how many final runs' worth of training the policy cost, on top of the final "
        "run (the RAISE paper puts the whole method at about 1.9× one full-data run).")]


def windows(n_steps: int, parts: int = WINDOWS) -> list[tuple[int, int]]:
    """Consecutive step windows [a, b) of ~1/parts of the run each (0-based batches)."""
    size = max(1, math.ceil(n_steps / parts))
    return [(a, min(a + size, n_steps)) for a in range(0, n_steps, size)]


def category_shares(batch_ids: list, categories: dict) -> dict:
    """{categories, windows (labels, 1-based steps), shares (category -> share per window),
    whole_run, pool (category -> share of the pool's rows), rows, distinct}."""
    def cat(i) -> str:
        return categories.get(str(i), NOT_IN_POOL)

    spans = windows(len(batch_ids))
    counts = [Counter(cat(i) for b in batch_ids[a:z] for i in b) for a, z in spans]
    whole = sum(counts, Counter())
    pool = Counter(categories.values())
    names = sorted(set(whole) - {NOT_IN_POOL}) + ([NOT_IN_POOL] if NOT_IN_POOL in whole else [])
    rows = sum(whole.values())
    return {"categories": names,
            "windows": [f"{a + 1}–{z}" if z - a > 1 else str(z) for a, z in spans],
            "shares": {c: [_ratio(n[c], sum(n.values())) for n in counts] for c in names},
            "whole_run": {c: _ratio(whole[c], rows) for c in names},
            "pool": {c: _ratio(pool[c], len(categories)) for c in names},
            "rows": rows, "distinct": len({str(i) for b in batch_ids for i in b})}


def _share_blocks(data: RunData, strategy: str) -> list[dict]:
    if data.categories is None:
        return [heading(f"Categories picked over the final run ({strategy})"),
                absent(data, POOL.shards)]
    s = category_shares(data.batch_ids, data.categories)
    return [
        heading(f"Categories picked over the final run ({strategy})"),
        figure(stacked_bars(s["windows"], s["shares"],
                            title=f"Share of each category in the batches ({strategy})",
                            xlabel="optimizer steps (window of ~10% of the run)",
                            ylabel="share of the rows trained on", legend_title="category")),
        table(["category", "pool share", *(f"steps {w}" for w in s["windows"]), "whole run"],
              [[c, num(s["pool"][c], 2), *(num(v, 2) for v in s["shares"][c]),
                num(s["whole_run"][c], 2)] for c in s["categories"]],
              caption=f"share = rows of the category / rows of the global batches in the "
              f"window ({integer(len(data.batch_ids))} steps, {integer(s['rows'])} rows "
              f"trained on, {integer(s['distinct'])} distinct pool rows); pool share = "
              "share of the category among all the pool's accepted rows (held-out rows "
              f"included); {NOT_IN_POOL} = ids the pool does not have."),
    ]


def _optional(data: RunData, art, expected: bool) -> list[dict]:
    """Nothing for an artifact the run need not have; its problem, or "not available"
    when the run should have it."""
    return [absent(data, art)] if expected or data.path(art) in data.errors else []


def _valid_blocks(history: list, strategy: str) -> list[dict]:
    return [
        heading(f"Validation loss over the final run ({strategy})"),
        figure(line_chart({f"validation loss ({strategy})": ([p[0] for p in history],
                                                             [p[1] for p in history])},
                          title="Validation loss of the final run", xlabel="optimizer step",
                          ylabel="validation loss (cross-entropy per token)")),
        note("measured by the batch picker on rows held out by the probe stage (never "
             "trained on), before training (step 0) and every raise.reward_every steps; the "
             "drop between measurements is the reward RAISE learns from. The final run's "
             f"batches were picked while it trained ({PICKED_BY.get(strategy, strategy)})."),
    ]


def picked_blocks(data: RunData, strategy: str) -> list[dict]:
    """The final run's validation loss and categories picked (a picked strategy writes
    both; any run may log its batches)."""
    picked = strategy in PICKED
    blocks = (_optional(data, TRAIN.picker, picked) if data.picker is None
              else _valid_blocks(data.picker["valid_history"], strategy))
    if data.batch_ids is None:
        return blocks + _optional(data, TRAIN.batch_ids, picked)
    return blocks + _share_blocks(data, strategy)


def raise_section(data: RunData, strategy: str) -> dict:
    blocks = policy_blocks(data)
    if data.rounds is not None or data.policy_cost is not None:
        blocks += cost_blocks(data)
    return section(TITLE, blocks + picked_blocks(data, strategy))


def raise_json(data: RunData) -> dict:
    """What the report's JSON keeps of the section."""
    shares = (category_shares(data.batch_ids, data.categories)
              if data.batch_ids is not None and data.categories is not None else None)
    return {"skipped": data.skipped.get("policy"), "rounds": data.rounds,
            "returns": round_returns(data.rounds or []), "cost": data.policy_cost,
            "cost_ratios": cost_ratios(data), "final_run": final_run(data),
            "valid_history": (data.picker or {}).get("valid_history"),
            "category_shares": shares}
