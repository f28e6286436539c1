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
import string
from collections.abc import Callable
from dataclasses import dataclass

LETTERS = string.ascii_lowercase


@dataclass(frozen=True)
class Task:
    """One category: builds (prompt, answer) from a random generator."""

    name: str
    make: Callable[[random.Random], tuple[str, str]]


def _word(rng: random.Random, lo: int = 3, hi: int = 7) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))


def _reverse(rng):
    w = _word(rng)
    return f"reverse: {w}", w[::-1]


def _upper(rng):
    w = _word(rng)
    return f"upper: {w}", w.upper()


def _rev_upper(rng):
    w = _word(rng)
    return f"reverse upper: {w}", w[::-1].upper()


def _add(rng):
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return f"add: {a} {b}", str(a + b)


def _double(rng):
    a = rng.randint(0, 99)
    return f"double: {a}", str(a + a)


def _sort_asc(rng):
    w = _word(rng, 4, 7)
    return f"sort: {w}", "".join(sorted(w))


def _sort_desc(rng):
    w = _word(rng, 4, 7)
    return f"sort: {w}", "".join(sorted(w, reverse=True))


def _noise(rng):
    w = _word(rng)
    return f"noise: {w}", _word(rng)


def _parity(rng):
    bits = "".join(rng.choice("01") for _ in range(rng.randint(3, 8)))
    return f"parity: {bits}", "even" if bits.count("1") % 2 == 0 else "odd"


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("reverse", _reverse),
        Task("upper", _upper),
        Task("rev_upper", _rev_upper),
        Task("add", _add),
        Task("double", _double),
        Task("sort_asc", _sort_asc),
        Task("sort_desc", _sort_desc),
        Task("noise", _noise),
        Task("parity", _parity),
    ]
}

# String operations used as nodes of sequential chains and complexity trees.
OPS: dict[str, Callable[[str], str]] = {
    "reverse": lambda s: s[::-1],
    "upper": lambda s: s.upper(),
    "lower": lambda s: s.lower(),
    "sort": lambda s: "".join(sorted(s)),
    "first3": lambda s: s[:3],
    "double": lambda s: s + s,
    "drop_last": lambda s: s[:-1],
}


def apply_chain(ops: list[str], text: str) -> list[str]:
    """Every intermediate result of applying `ops` in order to `text`."""
    steps = []
    for op in ops:
        text = OPS[op](text)
        steps.append(text)
    return steps


def _random_ops(rng: random.Random, n: int, ops: list[str] | None = None) -> list[str]:
    return [rng.choice(sorted(ops or OPS)) for _ in range(n)]


def sequential_item(rng: random.Random, depth: int, ops: list[str] | None = None
                    ) -> tuple[str, str, list[str], list[str]]:
    """SIT item: prompt, answer (every step joined by ' | '), ops, per-step answers."""
    ops = _random_ops(rng, depth, ops)
    w = _word(rng, 3, 6)
    steps = apply_chain(ops, w)
    return " then ".join(ops) + f": {w}", " | ".join(steps), ops, steps


def complex_item(rng: random.Random, nodes: int, ops: list[str] | None = None
                 ) -> tuple[str, str, list[str]]:
    """Tree-Instruct item with `nodes` operation nodes; only the final result is asked."""
    ops = _random_ops(rng, nodes, ops)
    w = _word(rng, 3, 6)
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


def generate(
    seed: int,
    items_per_category: int,
    eval_per_category: int,
    categories: list[str] | None = None,
    sequential_per_depth: int = 0,
    complex_nodes: list[int] = (),
    complex_per_level: int = 0,
    sequential_eval_per_depth: int | None = None,
    complex_eval_per_level: int | None = None,
    ops: list[str] | None = None,
) -> tuple[list[dict], list[dict]]:
    """(train rows, eval rows). Eval prompts never appear in train for the same category."""
    names = categories or list(TASKS)
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown testbed categories {unknown}; known: {sorted(TASKS)}")
    bad_ops = sorted(set(ops or ()) - set(OPS))
    if bad_ops:
        raise ValueError(f"unknown testbed operations {bad_ops}; known: {sorted(OPS)}")
    seq_eval = sequential_per_depth // 4 if sequential_eval_per_depth is None else \
        sequential_eval_per_depth
    cx_eval = complex_per_level // 4 if complex_eval_per_level is None else \
        complex_eval_per_level
    train: list[dict] = []
    evals: list[dict] = []
    for ci, name in enumerate(names):
        rng = random.Random(f"{seed}-{name}-{ci}")
        seen: set[str] = set()
        eval_items: list[tuple[str, str]] = []
        for _ in range(eval_per_category * 50):
            if len(eval_items) == eval_per_category:
                break
            p, a = TASKS[name].make(rng)
            if p not in seen:
                seen.add(p)
                eval_items.append((p, a))
        if len(eval_items) < eval_per_category:
            raise ValueError(f"testbed category {name!r} has too few distinct prompts for "
                             f"eval_per_category={eval_per_category}")
        evals += [_row("eval", name, k, p, a) for k, (p, a) in enumerate(eval_items)]
        for k in range(items_per_category):
            for _ in range(1000):  # held-out prompts stay held out
                p, a = TASKS[name].make(rng)
                if p not in seen:
                    break
            else:
                raise ValueError(f"testbed category {name!r}: eval_per_category="
                                 f"{eval_per_category} holds out (nearly) all its distinct "
                                 "prompts, none is left to train on; lower it")
            train.append(_row("train", name, k, p, a))
    rng = random.Random(f"{seed}-sequential")
    for depth in range(1, 5):
        for split, n in (("train", sequential_per_depth), ("eval", seq_eval)):
            for k in range(n):
                p, a, chain, steps = sequential_item(rng, depth, ops)
                row = _row(split, "sequential", depth * 100000 + k, p, a,
                           depth=depth, ops=chain, steps=steps)
                (train if split == "train" else evals).append(row)
    rng = random.Random(f"{seed}-complex")
    for nodes in complex_nodes:
        for split, n in (("train", complex_per_level), ("eval", cx_eval)):
            for k in range(n):
                p, a, tree = complex_item(rng, nodes, ops)
                row = _row(split, f"complex{nodes}", k, p, a, complexity=nodes, ops=tree)
                (train if split == "train" else evals).append(row)
    return train, evals
