"""Pool stage on Ray Data: read -> validate/quarantine -> dedupe ids -> embed + count tokens
-> assign categories -> Parquet shards, rejected rows and stats. Each row also gets a
`complexity` score (`data.complexity`: exact node count on the testbed, a content-word
proxy on real text).

Accounting: every row read ends in exactly one of `pool/shards` (or `pool/eval`) or
`pool/rejected`, and stats.json checks read == accepted + rejected. Blank lines of JSONL
files are not rows: they are counted apart (`blank_lines`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

import numpy as np
import pyarrow as pa

from instructmix.cluster import cluster_cpus
from instructmix.config import RunConfig
from instructmix.data import decontam, testbed
from instructmix.data.embed import EmbedBatch
from instructmix.data.read import parse_batch, read_records, source_items
from instructmix.layout import POOL, RunLayout

log = logging.getLogger("instructmix")


def _testbed_records(cfg: RunConfig) -> tuple[list[dict], list[dict]]:
    train, evals = testbed.generate(cfg.seed, cfg.pool.testbed)

    def records(rows, file_index):
        return [{"origin": f"testbed:{r['id']}", "raw": json.dumps(r).encode(),
                 "source": "testbed", "fmt": "messages", "mapping": "{}",
                 "order": file_index * 10**10 + k} for k, r in enumerate(rows)]

    return records(train, 0), records(evals, 1)


def _read(cfg: RunConfig, items: list[dict], records: list[dict] | None,
          marker: dict | None = None):
    import ray.data

    if records is not None:
        ds = ray.data.from_items(records)
    else:
        ds = ray.data.from_items(items).flat_map(read_records)
    ds = ds.map_batches(parse_batch, fn_kwargs={"max_chars": cfg.pool.max_chars},
                        batch_format="numpy", batch_size=1024)
    if marker is not None:  # decontamination against the eval set (`data.decontam`)
        ds = ds.map_batches(decontam.mark_batch, fn_kwargs=marker, batch_format="numpy",
                            batch_size=1024)
    return ds.materialize()


def _index(parsed) -> tuple[object, int]:
    """Driver-side view of every row read (no text): origin, id, error, kind, category;
    and the number of blank lines (not rows: left out of the view)."""
    cols = ["id", "order", "origin", "source", "error", "kind", "blank", "raw_text",
            "category"]
    index = parsed.select_columns(cols).to_pandas().sort_values("order", kind="stable")
    blank = index["blank"].astype(bool)
    return index[~blank].drop(columns="blank"), int(blank.sum())


def _mark_duplicates(index) -> set[int]:
    """Reject every row whose id was already seen (first by file and line wins); returns the
    `order` keys of those rows."""
    ok = index[index["error"] == ""]
    first = ok.drop_duplicates("id", keep="first").set_index("id")["origin"]
    dup = ok[ok.duplicated("id", keep="first")]
    for row_key, rid in zip(dup.index, dup["id"], strict=True):
        index.at[row_key, "error"] = f"duplicate id {rid!r} (first at {first[rid]})"
        index.at[row_key, "kind"] = "duplicate id"
    return {int(o) for o in dup["order"]}


def _keep_accepted(batch: dict, drop: set[int]) -> dict:
    keep = np.array([e == "" and not b and int(o) not in drop for e, b, o in
                     zip(batch["error"], batch["blank"], batch["order"], strict=True)],
                    dtype=bool)
    return {k: v[keep] for k, v in batch.items()}


def _rejected_rows(index) -> list[dict]:
    rej = index[index["error"] != ""][["origin", "source", "id", "kind", "error", "raw_text"]]
    return rej.rename(columns={"error": "reason"}).to_dict("records")


def _finalise(batch: dict) -> dict:
    msgs = [json.loads(m) for m in batch.pop("messages_json")]
    for k in ("error", "kind", "blank", "raw_text", "prompt_text", "response_text",
              "contam_eval", "dup_eval"):
        batch.pop(k, None)
    batch["messages"] = msgs
    return batch


def _assign_categories(ds, k: int, seed: int):
    """k-means on the embeddings of rows without a category -> 'cluster-NN'."""
    from sklearn.cluster import KMeans

    table = ds.select_columns(["category", "embedding"]).to_pandas()
    emb = np.stack(table.loc[table["category"] == "", "embedding"].to_numpy())
    n = len(emb)
    km = KMeans(n_clusters=min(k, n), n_init=4, random_state=seed).fit(emb)
    centers = km.cluster_centers_.astype(np.float32)

    def assign(batch: dict) -> dict:
        cats = batch["category"].astype(object)
        todo = np.array([c == "" for c in cats])
        if todo.any():
            e = np.stack(batch["embedding"][todo])
            nearest = ((e[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
            cats[todo] = [f"cluster-{c:02d}" for c in nearest]
        batch["category"] = cats
        return batch

    return ds.map_batches(assign, batch_format="numpy")


def _embed(cfg: RunConfig, parsed, duplicates: set[int], n_accepted: int):
    """Accepted rows + embedding and token count, on an actor pool."""
    import ray.data

    pc = cfg.pool
    actors = pc.embed_actors or cluster_cpus()
    # A few large batches per actor: every actor gets work, and each batch is embedded in
    # length order (less padding than small batches).
    per_batch = int(np.clip(n_accepted // (actors * 4) + 1, 256, 4096))
    log.info("pool: embedding %d rows with %d actors", n_accepted, actors)
    return (
        parsed.map_batches(_keep_accepted, fn_kwargs={"drop": duplicates}, batch_format="numpy")
        .repartition(-(-n_accepted // per_batch))
        .map_batches(
            EmbedBatch,
            fn_constructor_kwargs={"embedder": pc.embedder, "tokenizer": pc.tokenizer,
                                   "max_tokens": pc.max_embed_tokens,
                                   "batch_size": pc.embed_batch_size},
            batch_size=per_batch, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=0.5)
    )


def _train_split(cfg: RunConfig, layout: RunLayout, items, records, eval_rows) -> dict:
    """Read, validate, decontaminate against `eval_rows`, dedupe, embed and categorise the
    training pool; write its shards."""
    t0 = time.time()
    dc = cfg.pool.decontamination
    grams, counts = decontam.build_index(eval_rows, dc.ngram) if dc.enabled else (None, None)
    marker = None if grams is None else decontam.marker(grams, dc.pool_text)
    parsed = _read(cfg, items, records, marker)
    index, blank_lines = _index(parsed)
    duplicates = _mark_duplicates(index)
    rejected = _rejected_rows(index)
    n_read, n_accepted = len(index), int((index["error"] == "").sum())
    if n_accepted == 0:
        raise ValueError(f"pool: none of {n_read} rows was accepted; first reasons: "
                         f"{[r['reason'] for r in rejected[:3]]}")
    log.info("pool: read and validated %d rows in %.1f s", n_read, time.time() - t0)
    t0 = time.time()
    embedded = _embed(cfg, parsed, duplicates, n_accepted)
    n_uncategorised = int(((index["error"] == "") & (index["category"] == "")).sum())
    if n_uncategorised:
        embedded = _assign_categories(embedded.materialize(), cfg.pool.num_clusters, cfg.seed)
    final = (embedded.map_batches(_finalise, batch_format="numpy")
             .drop_columns(["order"]).materialize())
    log.info("pool: embedded in %.1f s", time.time() - t0)
    final.write_parquet(str(layout.writable(POOL.shards)))
    table = final.select_columns(["category", "n_tokens", "source"]).to_pandas()
    return {"read": n_read, "blank_lines": blank_lines, "accepted": n_accepted,
            "rejected": rejected, "kmeans": n_uncategorised, "table": table,
            "decontamination": decontam.summary(parsed, grams, counts, dc.pool_text)}


def _eval_split(cfg: RunConfig, layout: RunLayout, items, records) -> dict:
    """Read and validate the eval set (with each source's scorer fields, `eval_fields`);
    write the accepted rows. A row without a category takes its source's label."""
    rows: list[dict] = []
    rejected: list[dict] = []
    blank = 0
    if items or records:
        parsed = _read(cfg, items, records)
        index, blank = _index(parsed)
        dups = _mark_duplicates(index)
        rejected = [dict(r, split="eval") for r in _rejected_rows(index)]
        rows = (parsed.map_batches(_keep_accepted, fn_kwargs={"drop": dups},
                                   batch_format="numpy")
                .map_batches(_finalise, batch_format="numpy")
                .drop_columns(["order"]).take_all())
        for r in rows:  # else every source (and scorer) would share the category ""
            r["category"] = r["category"] or r["source"]
    layout.write_table(POOL.eval, pa.Table.from_pylist(rows) if rows else pa.table({}))
    return {"rows": rows, "rejected": rejected, "blank_lines": blank}


def _stats(train: dict, evals: dict) -> dict:
    """Counts that add up, checked against the written shards."""
    table, n_rejected = train["table"], len(train["rejected"])
    n_eval_rejected = len(evals["rejected"])
    return {
        "read": train["read"],
        "blank_lines": train["blank_lines"],
        "accepted": train["accepted"],
        "rejected": n_rejected,
        "counts_add_up": train["read"] == train["accepted"] + n_rejected
        == len(table) + n_rejected,
        "rejected_by_reason": dict(Counter(r["kind"] for r in train["rejected"])),
        "categories_assigned_by_kmeans": train["kmeans"],
        "decontamination": train["decontamination"],
        "per_category": {
            c: {"items": int(len(g)), "tokens": int(g["n_tokens"].sum())}
            for c, g in sorted(table.groupby("category"), key=lambda kv: kv[0])
        },
        "per_source": {s: int(v) for s, v in table["source"].value_counts().items()},
        "eval": {"read": len(evals["rows"]) + n_eval_rejected,
                 "blank_lines": evals["blank_lines"],
                 "accepted": len(evals["rows"]), "rejected": n_eval_rejected,
                 "rejected_by_reason": dict(Counter(r["kind"] for r in evals["rejected"])),
                 "per_category": dict(Counter(r["category"] for r in evals["rows"]))},
    }


def run_pool(cfg: RunConfig, layout: RunLayout) -> dict:
    """Write the pool's shards, eval rows, rejected rows and stats (see `POOL`)."""
    pc = cfg.pool
    if pc.sources:
        train_items = source_items(pc.sources, 0)
        eval_items = source_items(pc.eval_sources, len(train_items))
        train_recs = eval_recs = None
    else:
        train_items = eval_items = []
        train_recs, eval_recs = _testbed_records(cfg)
        layout.write_json(POOL.ground_truth, testbed.ground_truth(), indent=2)
    log.info("pool: reading %s", [i["path"] for i in train_items] or "the synthetic testbed")
    evals = _eval_split(cfg, layout, eval_items, eval_recs)  # first: the pool is checked
    train = _train_split(cfg, layout, train_items, train_recs, evals["rows"])  # against it
    layout.write_jsonl(POOL.rejected, train["rejected"] + evals["rejected"])
    stats = _stats(train, evals)
    if not stats["counts_add_up"]:
        raise RuntimeError(f"pool accounting does not add up: {stats}")
    layout.write_json(POOL.stats, stats, indent=2)
    log.info("pool: read %d, accepted %d, rejected %d (%s)", stats["read"], stats["accepted"],
             stats["rejected"], stats["rejected_by_reason"])
    return {k: stats[k] for k in ("read", "accepted", "rejected")}
