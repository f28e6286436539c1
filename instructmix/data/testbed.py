"""Synthetic skill testbed: small string/arithmetic tasks with exact answers and
*planted* relationships between categories, so every estimate can be checked.

Planted ground truth (also written by `ground_truth()`):
- prerequisite chain: `reverse` and `upper` are the two base skills of `rev_upper`
  (reverse the letters, then uppercase them).
- synergy pair: `add` (a+b) and `double` (a+a) share the digit-addition sub-skill.
- conflict pair: `sort_asc` and `sort_desc` use the same instruction surface
  ("sort: ...") with contradictory targets (ascending vs descending).
- noise: `noise` answers are random letters unrelated to the input.
- irrelevant: `parity` (even/odd count of 1s in a bit string) shares no sub-skill.

Sequential (SIT) items chain 1-4 string operations and answer every step, separated by
" | "; complexity (Tree-Instruct) items compose n operation nodes and answer only the
final result. Everything is a pure function of the seed.
"""

from __future__ import annotations

import json
import random

from instructmix.config import TestbedConfig
from instructmix.grammar import OPS, TASKS, apply_chain, random_word


def _random_ops(rng: random.Random, n: int, ops: list[str] | None = None) -> list[str]:
    return [rng.choice(sorted(ops or OPS)) for _ in range(n)]


def sequential_item(rng: random.Random, depth: int, ops: list[str] | None = None
                    ) -> tuple[str, str, list[str], list[str]]:
    """SIT item: prompt, answer (every step joined by ' | '), ops, per-step answers."""
    ops = _random_ops(rng, depth, ops)
    w = random_word(rng, 3, 6)
    steps = apply_chain(ops, w)
    return " then ".join(ops) + f": {w}", " | ".join(steps), ops, steps


def complex_item(rng: random.Random, nodes: int, ops: list[str] | None = None
                 ) -> tuple[str, str, list[str]]:
    """Tree-Instruct item with `nodes` operation nodes; only the final result is asked."""
    ops = _random_ops(rng, nodes, ops)
    w = random_word(rng, 3, 6)
    expr = w
    for op in ops:
        expr = f"{op}({expr})"
    return f"eval: {expr}", apply_chain(ops, w)[-1], ops


def ground_truth() -> dict:
    """Expected sign of each planted interaction (gamma_ij: training on j helps(+)/hurts(-)
    category i) and the prerequisite edges (base -> dependent)."""
    interactions = [
        {"i": "rev_upper", "j": "reverse", "sign": "+", "kind": "prerequisite"},
        {"i": "rev_upper", "j": "upper", "sign": "+", "kind": "prerequisite"},
        {"i": "add", "j": "double", "sign": "+", "kind": "synergy"},
        {"i": "double", "j": "add", "sign": "+", "kind": "synergy"},
        {"i": "sort_asc", "j": "sort_desc", "sign": "-", "kind": "conflict"},
        {"i": "sort_desc", "j": "sort_asc", "sign": "-", "kind": "conflict"},
    ]
    interactions += [
        {"i": "parity", "j": j, "sign": "0", "kind": "irrelevant"}
        for j in TASKS
        if j not in ("parity", "noise")
    ]
    return {
        "categories": list(TASKS),
        "interactions": interactions,
        "prerequisites": [
            {"base": "reverse", "dependent": "rev_upper"},
            {"base": "upper", "dependent": "rev_upper"},
        ],
        "noise": ["noise"],
        "irrelevant": ["parity"],
        "conflict_pairs": [["sort_asc", "sort_desc"]],
        "synergy_pairs": [["add", "double"]],
    }


def _row(split: str, category: str, idx: int, prompt: str, answer: str, **meta) -> dict:
    return {
        "id": f"testbed-{split}-{category}-{idx}",
        "category": category,
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": answer},
        ],
        "answer": answer,
        "source": "testbed",
        "meta": json.dumps(meta, sort_keys=True) if meta else "",
    }


def _category_rows(seed: int, name: str, ci: int, n_train: int, n_eval: int
                   ) -> tuple[list[dict], list[dict]]:
    """One category's train and eval rows; eval prompts never appear in train."""
    rng = random.Random(f"{seed}-{name}-{ci}")
    seen: set[str] = set()
    eval_items: list[tuple[str, str]] = []
    for _ in range(n_eval * 50):
        if len(eval_items) == n_eval:
            break
        p, a = TASKS[name].make(rng)
        if p not in seen:
            seen.add(p)
            eval_items.append((p, a))
    if len(eval_items) < n_eval:
        raise ValueError(f"testbed category {name!r} has too few distinct prompts for "
                         f"eval_per_category={n_eval}")
    evals = [_row("eval", name, k, p, a) for k, (p, a) in enumerate(eval_items)]
    train = []
    for k in range(n_train):
        for _ in range(1000):  # held-out prompts stay held out
            p, a = TASKS[name].make(rng)
            if p not in seen:
                break
        else:
            raise ValueError(f"testbed category {name!r}: eval_per_category={n_eval} holds "
                             "out (nearly) all its distinct prompts, none is left to train "
                             "on; lower it")
        train.append(_row("train", name, k, p, a))
    return train, evals


def _sequential_rows(seed: int, tb: TestbedConfig, out: dict[str, list]) -> None:
    n_eval = (tb.sequential_per_depth // 4 if tb.sequential_eval_per_depth is None
              else tb.sequential_eval_per_depth)
    rng = random.Random(f"{seed}-sequential")
    for depth in range(1, 5):
        for split, n in (("train", tb.sequential_per_depth), ("eval", n_eval)):
            for k in range(n):
                p, a, chain, steps = sequential_item(rng, depth, tb.sequential_ops)
                out[split].append(_row(split, "sequential", depth * 100000 + k, p, a,
                                       depth=depth, ops=chain, steps=steps))


def _complex_rows(seed: int, tb: TestbedConfig, out: dict[str, list]) -> None:
    n_eval = (tb.complex_per_level // 4 if tb.complex_eval_per_level is None
              else tb.complex_eval_per_level)
    rng = random.Random(f"{seed}-complex")
    for nodes in tb.complex_nodes:
        for split, n in (("train", tb.complex_per_level), ("eval", n_eval)):
            for k in range(n):
                p, a, tree = complex_item(rng, nodes, tb.sequential_ops)
                out[split].append(_row(split, f"complex{nodes}", k, p, a, complexity=nodes,
                                       ops=tree))


def generate(seed: int, tb: TestbedConfig) -> tuple[list[dict], list[dict]]:
    """(train rows, eval rows) of the testbed section `tb`, a pure function of the seed."""
    names = tb.categories or list(TASKS)
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown testbed categories {unknown}; known: {sorted(TASKS)}")
    out: dict[str, list] = {"train": [], "eval": []}
    for ci, name in enumerate(names):
        train, evals = _category_rows(seed, name, ci, tb.items_per_category,
                                      tb.eval_per_category)
        out["train"] += train
        out["eval"] += evals
    _sequential_rows(seed, tb, out)
    _complex_rows(seed, tb, out)
    return out["train"], out["eval"]
