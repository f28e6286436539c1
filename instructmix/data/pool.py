"""Pool stage on Ray Data: read -> validate/quarantine -> dedupe ids -> embed + count tokens
-> assign categories -> Parquet shards, rejected rows and stats. Each row also gets a
`complexity` score (`data.complexity`: exact node count on the testbed, a content-word
proxy on real text).

Reading, validation, dedupe and the counts are `data.ingest` (streaming: no row of the pool
is held in the driver; bench/pool_scale.py measures its memory). Accounting: every row read
ends in exactly one of `pool/shards` (or `pool/eval`) or `pool/rejected`; stats.json checks
read == accepted + rejected, and per file that its independently counted lines == lines not
sampled + blank + accepted + rejected. Blank lines of JSONL files are not rows: they are
counted apart (`blank_lines`).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import zlib
from collections import Counter

import numpy as np
import pyarrow as pa

from instructmix.cluster import node_cpus, starvation_free_actors, with_progress
from instructmix.config import RunConfig
from instructmix.data import decontam, testbed
from instructmix.data.embed import EmbedBatch
from instructmix.data.ingest import (
    Ingested,
    first_reasons,
    ingest,
    ingest_records,
    merged_counts,
    rejected_lines,
)
from instructmix.data.read import ORDER_STRIDE, source_items
from instructmix.layout import POOL, RunLayout
from instructmix.storage import ray_storage

log = logging.getLogger("instructmix")
EMBED_ACTOR_CPUS = 0.5  # on 2 CPUs, actors of a whole CPU left none for the tasks feeding them


def _testbed_records(cfg: RunConfig) -> tuple[list[dict], list[dict]]:
    train, evals = testbed.generate(cfg.seed, cfg.pool.testbed)

    def records(rows, file_index):
        return [{"origin": f"testbed:{r['id']}", "raw": json.dumps(r).encode(),
                 "source": "testbed", "fmt": "messages", "mapping": "{}", "eval": "",
                 "file": f"testbed:{'eval' if file_index else 'train'}",
                 "order": file_index * ORDER_STRIDE + k} for k, r in enumerate(rows)]

    return records(train, 0), records(evals, 1)


def _ingest(cfg: RunConfig, items, records, marker=None) -> Ingested:
    pc = cfg.pool
    if records is not None:
        return ingest_records(records, pc.max_chars, pc.dedupe_rows, marker)
    return ingest(items, pc.max_chars, pc.chunk_bytes, pc.block_rows, pc.dedupe_rows,
                  marker)


def _finalise(batch: dict) -> dict:
    msgs = [json.loads(m) for m in batch.pop("messages_json")]
    for k in ("error", "kind", "blank", "raw_text", "prompt_text", "response_text",
              "contam_eval", "dup_eval", "status", "file"):
        batch.pop(k, None)
    batch["messages"] = msgs
    return batch




def _sample(batch: dict, rate: float) -> dict:
    """Rows of no category whose id hashes below `rate`: the same sample in every run."""
    keep = np.array([c == "" and zlib.crc32(str(i).encode()) < rate * 2**32
                     for c, i in zip(batch["category"], batch["id"], strict=True)], dtype=bool)
    return {"id": batch["id"][keep], "embedding": batch["embedding"][keep]}


def _assign_categories(ds, k: int, seed: int, n_uncategorised: int, sample: int):
    """k-means on the embeddings of (a hash sample of at most about `sample`) rows without
    a category; every such row gets its nearest centre -> 'cluster-NN'."""
    from sklearn.cluster import KMeans

    rate = min(1.0, sample / n_uncategorised)
    picked = ds.map_batches(_sample, fn_kwargs={"rate": rate}, batch_format="numpy")
    rows = sorted(picked.take_all(), key=lambda r: r["id"])  # same fit in every run
    emb = np.stack([r["embedding"] for r in rows])
    km = KMeans(n_clusters=min(k, len(emb)), n_init=4, random_state=seed).fit(emb)
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

    return ds.map_batches(assign, batch_format="numpy"), len(emb)


def _embed(cfg: RunConfig, accepted, n_accepted: int):
    """Accepted rows + embedding and token count, on an actor pool."""
    import ray.data

    pc = cfg.pool
    cpus = node_cpus()
    safe = starvation_free_actors(cpus, EMBED_ACTOR_CPUS)
    actors = pc.embed_actors or min(int(sum(cpus)), safe)
    if actors > safe:
        log.warning("pool: pool.embed_actors=%d can take every node's last whole CPU (at "
                    "most %d leave one for the tasks that feed them); the stage may hang",
                    actors, safe)
    # A few large batches per actor: every actor gets work, and each batch is embedded in
    # length order (less padding than small batches).
    per_batch = int(np.clip(n_accepted // (actors * 4) + 1, 256, 4096))
    log.info("pool: embedding %d rows with %d actors", n_accepted, actors)
    return (
        accepted.repartition(-(-n_accepted // per_batch))
        .map_batches(
            EmbedBatch,
            fn_constructor_kwargs={"embedder": pc.embedder, "tokenizer": pc.tokenizer,
                                   "max_tokens": pc.max_embed_tokens,
                                   "batch_size": pc.embed_batch_size},
            batch_size=per_batch, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=EMBED_ACTOR_CPUS)
    )


def read_parquet_in_tasks(path: str, fs, columns: list[str]):
    """`columns` of the Parquet files under `path`, by Ray Data's first Parquet reader (the
    driver lists the files, a few tasks sample them). Ray 2.60's default reader starts 32
    footer-reading actors, a Python process each, for every read whatever its size."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    default = ctx.use_datasource_v2
    ctx.use_datasource_v2 = False  # chosen when the dataset is made, not when it runs
    try:
        return ray.data.read_parquet(path, filesystem=fs, columns=columns)
    finally:
        ctx.use_datasource_v2 = default


def _counts(layout: RunLayout) -> tuple[dict, dict]:
    """Items and tokens per category, rows per source, from the shards written (three columns
    read back by tasks on any node): materialized for this count instead, the whole embedded
    pool stayed in Ray's object store (an embedding alone is 1.5 KB)."""
    path, fs = ray_storage(layout.path(POOL.shards))
    shards = read_parquet_in_tasks(path, fs, ["category", "source", "n_tokens"])
    per_category: dict = {}
    per_source: Counter = Counter()
    for (c, s), (n, t) in sorted(merged_counts(shards, ["category", "source"], "n_tokens")
                                 .items()):
        cat = per_category.setdefault(c, {"items": 0, "tokens": 0})
        cat["items"], cat["tokens"] = cat["items"] + n, cat["tokens"] + t
        per_source[s] += n
    return per_category, dict(sorted(per_source.items()))


def _train_split(cfg: RunConfig, layout: RunLayout, items, records, eval_rows) -> dict:
    """Read, validate, decontaminate against `eval_rows`, dedupe, embed and categorise the
    training pool; write its shards."""
    t0 = time.time()
    dc = cfg.pool.decontamination
    grams, counts = decontam.build_index(eval_rows, dc.ngram) if dc.enabled else (None, None)
    marker = None if grams is None else decontam.marker(grams, dc.pool_text)
    ing = _ingest(cfg, items, records, marker)
    if ing.accepted == 0:
        raise ValueError(f"pool: none of {ing.read} rows was accepted; first reasons: "
                         f"{first_reasons(ing)}")
    log.info("pool: read and validated %d rows in %.1f s", ing.read, time.time() - t0)
    t0 = time.time()
    accepted = ing.rows("accepted")
    n_uncategorised = ing.uncategorised
    embedded = _embed(cfg, accepted, ing.accepted)
    fitted_on = 0
    if n_uncategorised:
        embedded, fitted_on = _assign_categories(
            with_progress(embedded, embedded.materialize), cfg.pool.num_clusters, cfg.seed,
            n_uncategorised, cfg.pool.kmeans_sample)
    final = embedded.map_batches(_finalise, batch_format="numpy").drop_columns(["order"])
    written = with_progress(final, lambda: layout.write_dataset(POOL.shards, final))
    log.info("pool: embedded and written in %.1f s", time.time() - t0)
    per_category, per_source = _counts(layout)
    return {"ingested": ing, "written": written, "kmeans": n_uncategorised,
            "kmeans_fitted_on": fitted_on, "per_category": per_category,
            "per_source": per_source,
            "decontamination": decontam.summary(ing.outcome, grams, counts, dc.pool_text)}


def _eval_split(cfg: RunConfig, layout: RunLayout, items, records) -> dict:
    """Read and validate the eval set (with each source's scorer fields, `eval_fields`);
    write the accepted rows. A row without a category takes its source's label."""
    rows: list[dict] = []
    ing = None
    if items or records:
        ing = _ingest(cfg, items, records)
        rows = (ing.rows("accepted").map_batches(_finalise, batch_format="numpy")
                .drop_columns(["order"]).take_all())
        for r in rows:  # else every source (and scorer) would share the category ""
            r["category"] = r["category"] or r["source"]
    layout.write_table(POOL.eval, pa.Table.from_pylist(rows) if rows else pa.table({}))
    return {"rows": rows, "ingested": ing}


def _stats(train: dict, evals: dict) -> dict:
    """Counts that add up: rows read against rows written and rejected, and each file's
    independent line count against what became of its lines."""
    ing, ev = train["ingested"], evals["ingested"]
    n_rejected = sum(ing.rejected_by_reason.values())
    ev_rejected = sum(ev.rejected_by_reason.values()) if ev else 0
    files = {**ing.per_file, **(ev.per_file if ev else {})}
    return {
        "read": ing.read,
        "blank_lines": ing.blank,
        "accepted": ing.accepted,
        "rejected": n_rejected,
        "written": train["written"],  # rows in the shard files, counted from their footers
        "counts_add_up": ing.read == ing.accepted + n_rejected == train["written"] + n_rejected
        and all(f["adds_up"] for f in files.values()),
        "rejected_by_reason": ing.rejected_by_reason,
        "per_file": files,
        "categories_assigned_by_kmeans": train["kmeans"],
        "kmeans_fitted_on": train["kmeans_fitted_on"],
        "decontamination": train["decontamination"],
        "per_category": train["per_category"],
        "per_source": train["per_source"],
        "eval": {"read": ev.read if ev else 0, "blank_lines": ev.blank if ev else 0,
                 "accepted": len(evals["rows"]), "rejected": ev_rejected,
                 "rejected_by_reason": ev.rejected_by_reason if ev else {},
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
    ev = evals["ingested"]
    layout.write_chunks(POOL.rejected, itertools.chain(
        rejected_lines(train["ingested"]), rejected_lines(ev, "eval") if ev else ()))
    stats = _stats(train, evals)
    if not stats["counts_add_up"]:
        raise RuntimeError(f"pool accounting does not add up: {stats}")
    layout.write_json(POOL.stats, stats, indent=2)
    log.info("pool: read %d, accepted %d, rejected %d (%s)", stats["read"], stats["accepted"],
             stats["rejected"], stats["rejected_by_reason"])
    return {k: stats[k] for k in ("read", "accepted", "rejected")}
