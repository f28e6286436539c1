"""Augment stage: the selection's SIT, Tree-Instruct or control version, token-matched.

Reads `SELECT.train` (the selection in training order). For `augment.train_on` in
sit | tree | control it rewrites every selected row through the configured backend, then
keeps a seeded subset of the produced items whose tokens add up to at most the selection's
tokens (augmented items are longer: fewer of them fit). Writes (see `AUGMENT`)
- items: every produced item (origin_id, kind, mode, depth, chain, complexity,
  n_tokens) and whether token matching kept it;
- rejected: every row the backend could not augment (origin_id, kind, step, reason,
  raw output) — rows in = items + rejected, checked;
- train: what the train stage trains on, in the selection's order;
- stats: counts, reasons, tokens before and after matching, depths and modes;
- judged (`augment.judge`): the generator's yes/no verdict on each of its rewrites next
  to the rule checks' (`judge_check`), counted in stats `judge_vs_rule`.
`train_on: plain` skips the stage (the train stage reads the selection itself).
Token counts use the pool's counter (`pool.tokenizer`, else the embedder's tokenizer), so
they are in the same units as the pool's `n_tokens` and the select budget.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import numpy as np
import pyarrow as pa

from instructmix.config import RunConfig
from instructmix.layout import AUGMENT, RUN, SELECT, RunLayout

log = logging.getLogger("instructmix")


def make_rewriter(cfg: RunConfig, run: RunLayout):
    """The rule rewriter (testbed, exact) or an LLM rewriter over an HF / HTTP generator."""
    from instructmix.generation.base import GenParams

    g = cfg.augment.generator
    if g.backend == "rules":
        from instructmix.augment.rules import RuleRewriter

        return RuleRewriter(cfg.pool.testbed.sequential_ops, seed=cfg.seed)
    from instructmix.augment.llm_rewriter import LLMRewriter
    from instructmix.generation.factory import make_generator
    gen = make_generator(g, run.model_path(), run.path(RUN.cache))
    return LLMRewriter(gen, GenParams(g.max_new_tokens, g.temperature))


def token_counter(cfg: RunConfig):
    """texts -> token counts, in the pool's `n_tokens` units."""
    from instructmix.data.embed import count_tokens, counting_tokenizer

    tok = counting_tokenizer(cfg.pool.embedder, cfg.pool.tokenizer)
    return lambda texts: count_tokens(tok, texts)


def _text(item: dict) -> str:
    from instructmix.data.embed import counted_text
    from instructmix.data.schema import prompt_text

    return counted_text(prompt_text(item["messages"]), item["messages"][-1]["content"])


def augment_rows(rows: list[dict], kind: str, cfg: RunConfig, rewriter, count, seed: int,
                 target_tokens: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(kept items in the rows' order, every produced item, rejects). Kept = the token
    match of the produced items to `target_tokens`."""
    from instructmix.augment.sit import control_augment, sit_augment
    from instructmix.augment.tokens import token_match
    from instructmix.augment.tree_instruct import tree_augment

    if kind == "sit":
        items, rejects = sit_augment(rows, rewriter, cfg.augment.sit, seed)
    elif kind == "tree":
        items, rejects = tree_augment(rows, rewriter, cfg.augment.tree)
    else:
        items, rejects = control_augment(rows, rewriter)
    sizes = count([_text(x) for x in items])
    for item, n in zip(items, sizes, strict=True):
        item["n_tokens"] = int(n)
    keep = set(token_match(items, sizes, target_tokens, seed))
    for k, item in enumerate(items):
        item["token_matched"] = k in keep
    return [x for x in items if x["token_matched"]], items, rejects


def _reason_group(reason: str) -> str:
    """Reasons that differ only in numbers or quoted text count together."""
    return re.sub(r"'[^']*'|\d+", "…", reason)[:100]


def stats_of(rows: list[dict], kept: list[dict], items: list[dict], rejects: list[dict]) -> dict:
    selected_tokens = int(sum(int(r["n_tokens"]) for r in rows))
    return {
        "rows_in": len(rows), "items": len(items), "rejected": len(rejects),
        "counts_add_up": len(rows) == len(items) + len(rejects),
        "rejected_by_reason": dict(Counter(_reason_group(r["reason"]) for r in rejects)),
        "selection_tokens": selected_tokens,
        "produced_tokens": int(sum(x["n_tokens"] for x in items)),
        "matched_items": len(kept),
        "matched_tokens": int(sum(x["n_tokens"] for x in kept)),
        "matched_per_category": dict(sorted(Counter(x["category"] for x in kept).items())),
        "depths": {str(d): n for d, n in sorted(Counter(x["depth"] for x in kept).items())},
        "modes": dict(Counter(x["mode"] for x in kept).most_common(20)),
        "mean_complexity": float(np.mean([x["complexity"] for x in kept])) if kept else None,
    }


def augment_tools(cfg: RunConfig, run: RunLayout) -> dict:
    """The rewriter and token counter, made once and kept between calls (compare cells)."""
    return {"rewriter": make_rewriter(cfg, run), "count": token_counter(cfg)}


def augment_selection(cfg: RunConfig, rows: list[dict], kind: str, seed: int, out: RunLayout,
                      tools: dict) -> dict:
    """Augment `rows` (a selection, in training order) and write the `AUGMENT` artifacts
    through `out` (the augment stage's layout, or a compare cell's); returns the stats."""
    target = int(sum(int(r["n_tokens"]) for r in rows))
    kept, items, rejects = augment_rows(rows, kind, cfg, tools["rewriter"], tools["count"],
                                        seed, target)
    stats = dict(stats_of(rows, kept, items, rejects), kind=kind,
                 backend=cfg.augment.generator.backend)
    if cfg.augment.judge:  # measured only: nothing above depends on it
        from instructmix.augment.judge_check import judge_vs_rule

        judged, stats["judge_vs_rule"] = judge_vs_rule(tools["rewriter"], kind, cfg.augment.tree)
        out.write_jsonl(AUGMENT.judged, judged)
    out.write_jsonl(AUGMENT.rejected, rejects)
    out.write_json(AUGMENT.stats, stats)
    if not kept:
        raise ValueError(f"augment: no {kind} item was produced from {len(rows)} rows; reasons: "
                         f"{stats['rejected_by_reason']} (every row in "
                         f"{out.path(AUGMENT.rejected)})")
    out.write_table(AUGMENT.items, pa.Table.from_pylist(items))
    out.write_table(AUGMENT.train, pa.Table.from_pylist(kept))
    log.info("augment (%s): %d rows -> %d items (%d rejected); %d items, %d tokens kept to "
             "match the selection's %d tokens", kind, len(rows), len(items), len(rejects),
             len(kept), stats["matched_tokens"], target)
    return stats


def run_augment(cfg: RunConfig, layout: RunLayout) -> dict:
    kind = cfg.augment.train_on
    if kind == "plain":
        layout.write_json(AUGMENT.skipped, {"reason": "augment.train_on is plain"})
        return {"skipped": "augment.train_on is plain: the train stage reads the selection"}
    rows = layout.read_table(SELECT.train).to_pylist()
    log.info("augment: %s on %d selected rows with the %s backend", kind, len(rows),
             cfg.augment.generator.backend)
    stats = augment_selection(cfg, rows, kind, cfg.seed, layout, augment_tools(cfg, layout))
    return {k: stats[k] for k in ("rows_in", "items", "rejected", "matched_items",
                                  "matched_tokens", "selection_tokens")}
