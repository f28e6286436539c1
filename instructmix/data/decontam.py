"""Decontamination: pool rows that share a word n-gram with an eval item are rejected.

Text is normalised as GPT-3 does: lowercased, split into words on non-alphanumerics. The eval
side is each eval item's prompt (every non-assistant turn); the pool side is the row's prompt,
or its prompt and response (`pool.decontamination.pool_text`), joined, so an n-gram may cross
the instruction/input boundary. Eval prompts shorter than n words are not checked (GPT-3 would
match them whole, which rejects most of a pool of short tasks such as the testbed's): they
are counted as too short. Separately, eval items whose whole normalised prompt equals a pool
row's are reported (not rejected).

Scale: the eval n-grams are hashed once on the driver (blake2b of each word, then a
polynomial of the n word hashes mod 2^64: the same in every process) into a sorted uint64
array; pool rows are checked inside a Ray Data `map_batches` step with `np.searchsorted`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np

from instructmix.data.schema import prompt_text

_WORD = re.compile(r"[^\W_]+")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial hash is a bijection per step
_CACHE: dict[str, dict] = {}  # the eval index, once per worker process
SHOW_IDS = 20  # eval ids listed in stats.json


def words(text: str) -> list[str]:
    """Lowercased runs of letters and digits."""
    return _WORD.findall(text.lower())


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def gram_hashes(ws: list[str], n: int, memo: dict | None = None) -> np.ndarray:
    """One uint64 per n-gram of `ws` (in order); empty when len(ws) < n."""
    memo = {} if memo is None else memo
    m = len(ws) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    wh = np.array([memo[w] if w in memo else memo.setdefault(w, _h64(w)) for w in ws],
                  dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    for j in range(n):
        h = h * _MULT + wh[j:j + m]
    return h


def _first_hit(keys: np.ndarray, values: np.ndarray, hs: np.ndarray) -> tuple[int, int]:
    """(position in hs, value) of the first of `hs` found in sorted `keys`; (-1, -1)."""
    if not len(keys) or not len(hs):
        return -1, -1
    pos = np.minimum(np.searchsorted(keys, hs), len(keys) - 1)
    hit = np.flatnonzero(keys[pos] == hs)
    return (-1, -1) if not len(hit) else (int(hit[0]), int(values[pos[hit[0]]]))


def _sorted_first(hashes: list[np.ndarray], items: list[np.ndarray]) -> tuple:
    """Sorted unique keys, each with the first eval item that has it."""
    if not hashes:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    keys, first = np.unique(np.concatenate(hashes), return_index=True)
    return keys, np.concatenate(items)[first]


def build_index(rows: list[dict], n: int) -> tuple[dict, dict]:
    """Eval rows -> (index shipped to the workers, per-source counts for stats.json)."""
    grams, gram_items, prompts, prompt_items = [], [], [], []
    items, too_short = Counter(), Counter()
    labels, memo = [], {}
    for i, r in enumerate(rows):
        src = str(r["source"])
        labels.append((str(r["id"]), src, str(r["origin"])))
        items[src] += 1
        ws = words(prompt_text(list(r["messages"])))
        if ws:
            prompts.append(np.array([_h64(" ".join(ws))], dtype=np.uint64))
            prompt_items.append(np.array([i]))
        hs = gram_hashes(ws, n, memo)
        if not len(hs):
            too_short[src] += 1
            continue
        grams.append(hs)
        gram_items.append(np.full(len(hs), i))
    keys, item = _sorted_first(grams, gram_items)
    pkeys, pitem = _sorted_first(prompts, prompt_items)
    index = {"n": n, "keys": keys, "item": item, "prompt_keys": pkeys, "prompt_item": pitem,
             "labels": labels}
    return index, {"items": dict(items), "too_short": dict(too_short)}


def _index(ref) -> dict:
    import ray

    if isinstance(ref, dict):
        return ref
    key = ref.hex()
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = ray.get(ref)
    return _CACHE[key]


def mark_batch(batch: dict, index_ref, pool_text: str) -> dict:
    """Ray Data step after parsing: reject accepted rows that share an n-gram with an eval
    prompt (kind 'contaminated'); `contam_eval` / `dup_eval` hold the eval item (or -1) that
    the row overlaps / whose normalised prompt it equals."""
    ix = _index(index_ref)
    n, memo = ix["n"], {}
    rows = len(batch["order"])
    for col in ("error", "kind", "raw_text"):  # may be read-only views
        batch[col] = np.array(batch[col], dtype=object)
    contam, dup = np.full(rows, -1, dtype=np.int64), np.full(rows, -1, dtype=np.int64)
    for k in range(rows):
        if batch["error"][k] or batch["blank"][k]:
            continue
        prompt = str(batch["prompt_text"][k])
        ws = words(prompt)
        if ws:
            dup[k] = _first_hit(ix["prompt_keys"], ix["prompt_item"],
                                np.array([_h64(" ".join(ws))], dtype=np.uint64))[1]
        if pool_text == "prompt+response":
            ws = ws + words(str(batch["response_text"][k]))
        at, item = _first_hit(ix["keys"], ix["item"], gram_hashes(ws, n, memo))
        if at < 0:
            continue
        eid, src, origin = ix["labels"][item]
        gram = " ".join(ws[at:at + n])
        gram = gram if len(gram) <= 200 else gram[:197] + "..."
        contam[k] = item
        batch["error"][k] = (f"{n}-gram overlap with eval item {eid!r} (eval source {src!r}, "
                             f"{origin}): \"{gram}\"")
        batch["kind"][k] = "contaminated"
        batch["raw_text"][k] = prompt[:500]
    batch["contam_eval"], batch["dup_eval"] = contam, dup
    return batch


def _hits(batch: dict) -> dict:
    keep = (batch["contam_eval"] >= 0) | (batch["dup_eval"] >= 0)
    return {k: v[keep] for k, v in batch.items()}


def summary(parsed, index: dict | None, counts: dict | None, pool_text: str) -> dict:
    """The `decontamination` block of stats.json (from the marked pool dataset)."""
    if index is None:
        return {"enabled": False}
    cols = (parsed.select_columns(["contam_eval", "dup_eval"])  # only the rows that hit
            .map_batches(_hits, batch_format="numpy").to_pandas())
    labels = index["labels"]
    hits = Counter(labels[i][1] for i in cols.get("contam_eval", []) if i >= 0)
    dups = sorted({int(i) for i in cols.get("dup_eval", []) if i >= 0})
    items, short = counts["items"], counts["too_short"]
    return {
        "enabled": True, "ngram": index["n"], "pool_text": pool_text,
        "eval_items": sum(items.values()),
        "eval_items_indexed": sum(items.values()) - sum(short.values()),
        "eval_items_too_short": sum(short.values()),
        "pool_rows_rejected": sum(hits.values()),
        "per_eval_source": {s: {"items": c, "too_short": short.get(s, 0),
                                "pool_rows_rejected": hits.get(s, 0)}
                            for s, c in sorted(items.items())},
        "eval_items_duplicating_pool_prompts": {
            "count": len(dups), "ids": [labels[i][0] for i in dups[:SHOW_IDS]]},
    }


def marker(index: dict, pool_text: str) -> dict:
    """`fn_kwargs` of `mark_batch`: the index is put in the object store once."""
    import ray

    return {"index_ref": ray.put(index), "pool_text": pool_text}
