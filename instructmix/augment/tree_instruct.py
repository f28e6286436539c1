"""Tree-Instruct: grow each instruction by `nodes` tree nodes per round for
`rounds` rounds (6 nodes = 2 rounds of 3, round 2 rewriting round 1's output), filter every
round, then regenerate the response. Also the item / reject helpers shared with `sit`.

Item = canonical row (id `{origin_id}~{kind}`, category, messages [user, assistant],
answer (the response when the rewriter is exact, else ""), source, meta) plus origin_id,
kind, mode, depth, chain, complexity. chain is the same shape for every kind: a JSON list
of {mode, instruction} (surface form), first {"mode": "original", ...}, then one entry per
rewrite ("tree+N" here: a Tree-Instruct round adding N nodes).
Reject = {origin_id, kind, step, reason, raw}. Every input row ends as exactly one of them.
"""

from __future__ import annotations

import json
import re

from instructmix.config import TreeConfig
from instructmix.data.schema import meta_dict, prompt_text
from instructmix.generation.base import Reject, Rewriter

#: Testbed meta keys describing the instruction; stale once the instruction changes.
STRUCTURE_KEYS = ("depth", "ops", "steps", "complexity")


def canonical_of(rewriter, row: dict) -> str:
    """The row's instruction in the rewriter's explicit form (rules tag unchainable rows)."""
    text = prompt_text(row["messages"])
    fn = getattr(rewriter, "canonical", None)
    return fn(text, row.get("category", "")) if fn else text


def surface_of(rewriter, instruction: str) -> str:
    fn = getattr(rewriter, "surface", None)
    return fn(instruction) if fn else instruction


def _item_meta(row: dict, rewriter, instruction: str, changed: bool) -> str:
    """The item's meta JSON: the row's, with the structure keys redone when `changed`."""
    meta = dict(meta_dict(row.get("meta")))
    if changed:
        meta = {k: v for k, v in meta.items() if k not in STRUCTURE_KEYS}
        fn = getattr(rewriter, "meta", None)
        meta.update(fn(instruction) if fn else {})
    return json.dumps(meta, sort_keys=True) if meta else ""


def make_item(row: dict, rewriter, kind: str, instruction: str, response: str, *,
              mode: str, depth: int, chain: list, changed: bool = True) -> dict:
    """An augmented canonical row; `instruction` is in canonical form (surfaced here)."""
    return {
        "id": f"{row['id']}~{kind}",
        "category": row.get("category", ""),
        "messages": [{"role": "user", "content": surface_of(rewriter, instruction)},
                     {"role": "assistant", "content": response}],
        "answer": response if getattr(rewriter, "exact", False) else "",
        "source": row.get("source", ""),
        "meta": _item_meta(row, rewriter, instruction, changed),
        "origin_id": row["id"],
        "kind": kind,
        "mode": mode,
        "depth": depth,
        "chain": json.dumps(chain, ensure_ascii=False),
        "complexity": float(rewriter.complexity(instruction)),
    }


def make_reject(row: dict, kind: str, step: str, rej: Reject) -> dict:
    return {"origin_id": row["id"], "kind": kind, "step": step,
            "reason": rej.reason, "raw": rej.raw}


def check_counts(rows: list[dict], items: list[dict], rejects: list[dict]) -> None:
    """Invariant: every input row is exactly one item or one reject."""
    ends = [x["origin_id"] for x in items] + [r["origin_id"] for r in rejects]
    if sorted(ends) != sorted(r["id"] for r in rows):
        raise RuntimeError(f"augment: {len(rows)} rows but {len(items)} items + "
                           f"{len(rejects)} rejects (or ids do not match)")


def _has(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase.lower())}\b", text.lower()) is not None


def tree_filter(before: str, after: str, cfg: TreeConfig, lengths: bool = True) -> str | None:
    """Why a round's rewrite fails (None = it passes). Words are whitespace-split;
    `lengths=False` (exact rewriters) skips the min-added / max-words checks."""
    if not after.strip():
        return "tree: empty rewrite"
    n_in, n_out = len(before.split()), len(after.split())
    if lengths and n_out < n_in + cfg.min_added_words:
        return (f"tree: rewrite has {n_out} words, needs at least "
                f"{n_in + cfg.min_added_words} ({n_in} + {cfg.min_added_words})")
    if lengths and n_out > cfg.max_words:
        return f"tree: rewrite has {n_out} words, more than {cfg.max_words}"
    for word in cfg.banned_words:
        if _has(after, word) and not _has(before, word):
            return f"tree: leaked procedure word {word!r}"
    return None


def tree_augment(rows: list[dict], rewriter: Rewriter,
                 tree_cfg: TreeConfig) -> tuple[list[dict], list[dict]]:
    """(items, rejects) of Tree-Instruct with `tree_cfg` (a `TreeConfig`). One batched
    `add_nodes` call per round and one `respond` call over all surviving rows."""
    kind = "tree"
    lengths = not getattr(rewriter, "exact", False)
    rejects: list[dict] = []
    live = []  # (row, current instruction (canonical), chain)
    for row in rows:
        cur = canonical_of(rewriter, row)
        live.append((row, cur, [{"mode": "original", "instruction": surface_of(rewriter, cur)}]))
    mode = f"tree+{tree_cfg.nodes}"
    for rnd in range(1, tree_cfg.rounds + 1):
        outs = rewriter.add_nodes([cur for _, cur, _ in live], tree_cfg.nodes)
        kept = []
        for (row, cur, chain), out in zip(live, outs, strict=True):
            step = f"add_nodes[{rnd}]"
            if isinstance(out, Reject):
                rejects.append(make_reject(row, kind, step, out))
                continue
            why = tree_filter(surface_of(rewriter, cur), surface_of(rewriter, out),
                              tree_cfg, lengths)
            if why:
                rejects.append(make_reject(row, kind, step, Reject(why, out)))
            else:
                kept.append((row, out, [*chain, {"mode": mode,
                                                 "instruction": surface_of(rewriter, out)}]))
        live = kept
    items = []
    answers = rewriter.respond([cur for _, cur, _ in live])
    for (row, cur, chain), ans in zip(live, answers, strict=True):
        if isinstance(ans, Reject):
            rejects.append(make_reject(row, kind, "respond", ans))
        else:
            items.append(make_item(row, rewriter, kind, cur, ans, mode="tree",
                                   depth=1, chain=chain))
    check_counts(rows, items, rejects)
    return items, rejects
