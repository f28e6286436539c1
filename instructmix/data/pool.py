"""Pool stage on Ray Data: read -> validate/quarantine -> dedupe ids -> embed + count tokens
-> assign categories -> Parquet shards, rejected rows and stats. Each row also gets a
`complexity` score (`augment.complexity`: exact node count on the testbed, a content-word
proxy on real text).

Accounting: every row read ends in exactly one of `pool/shards` (or `pool/eval`) or
`pool/rejected`, and stats.json checks read == accepted + rejected. Blank lines of JSONL
files are not rows: they are counted apart (`blank_lines`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from instructmix.augment.complexity import complexity_score
from instructmix.cluster import cluster_cpus
from instructmix.config import RunConfig, SourceConfig
from instructmix.data import testbed
from instructmix.data.embed import EmbedBatch
from instructmix.data.schema import RowError, fallback_id, prompt_text, to_canonical

log = logging.getLogger("instructmix")
RAW_KEEP = 500  # characters of a rejected row kept for the report


def list_files(path: str) -> list[str]:
    p = Path(path).expanduser().resolve()
    if p.is_file():
        return [str(p)]
    if p.is_dir():
        files = sorted(
            str(f) for f in p.rglob("*") if f.suffix in (".jsonl", ".json", ".parquet")
        )
        if files:
            return files
        raise FileNotFoundError(f"pool source {path}: no .jsonl/.json/.parquet files inside")
    raise FileNotFoundError(f"pool source not found: {path}")


def _is_json_array(path: str) -> bool:
    """A .json file holding one array of rows (else it is read as JSON lines)."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if not head.startswith(b"["):
        return False
    try:
        with open(path, "rb") as f:
            return isinstance(json.load(f), list)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def read_records(item: dict) -> list[dict]:
    """One file -> raw records (bytes) with their origin; runs as a Ray task per file."""
    path, limit = item["path"], item["limit"]
    out = []
    if path.endswith(".parquet"):
        for k, row in enumerate(pq.read_table(path).to_pylist()):
            if limit and k >= limit:
                break
            raw = json.dumps(row, default=str).encode()
            out.append({"origin": f"{path}:row{k + 1}", "raw": raw})
    elif path.endswith(".json") and _is_json_array(path):
        with open(path, "rb") as f:
            rows = json.load(f)
        for k, row in enumerate(rows[:limit] if limit else rows):
            out.append({"origin": f"{path}:item{k + 1}", "raw": json.dumps(row).encode()})
    else:
        with open(path, "rb") as f:
            for k, line in enumerate(f):
                if limit and k >= limit:
                    break
                out.append({"origin": f"{path}:{k + 1}", "raw": line.rstrip(b"\r\n")})
    for k, rec in enumerate(out):
        rec.update(source=item["source"], fmt=item["fmt"], mapping=item["mapping"],
                   order=item["file_index"] * 10**10 + k)
    return out


def parse_batch(batch: dict, max_chars: int) -> dict:
    """Raw records -> canonical columns plus `error` ('' when accepted)."""
    cols = {k: [] for k in ("id", "category", "messages_json", "answer", "source", "meta",
                            "origin", "order", "error", "kind", "blank", "raw_text",
                            "prompt_text", "response_text", "complexity")}
    n = len(batch["origin"])
    for k in range(n):
        raw, origin = batch["raw"][k], str(batch["origin"][k])
        fmt, source = str(batch["fmt"][k]), str(batch["source"][k])
        mapping = json.loads(batch["mapping"][k])
        row, error, kind, text = None, "", "", ""
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError as e:
            error, kind = f"not valid UTF-8 (byte {e.start})", "not valid UTF-8"
            text = raw.decode("utf-8", errors="replace")
        blank = not error and not text.strip()
        if not error and not blank:
            try:
                row = to_canonical(json.loads(text), fmt, mapping, source,
                                   fallback_id(source, origin))
                if len(text) > max_chars:
                    raise RowError("too long", f"row of {len(text)} characters is longer "
                                   f"than pool.max_chars={max_chars}")
            except json.JSONDecodeError as e:
                error, kind = f"malformed JSON: {e.msg} at column {e.colno}", "malformed JSON"
            except RowError as e:
                error, kind = str(e), e.kind
        row = row or {"id": "", "category": "", "messages": [], "answer": "", "meta": ""}
        cols["id"].append(row["id"])
        cols["category"].append(row["category"])
        cols["messages_json"].append(json.dumps(row["messages"]))
        cols["answer"].append(row["answer"])
        cols["source"].append(source)
        cols["meta"].append(row["meta"])
        cols["origin"].append(origin)
        cols["order"].append(int(batch["order"][k]))
        cols["error"].append(error)
        cols["kind"].append(kind)
        cols["blank"].append(blank)
        cols["raw_text"].append(text[:RAW_KEEP] if error else "")
        prompt = prompt_text(row["messages"]) if row["messages"] else ""
        cols["prompt_text"].append(prompt)
        cols["complexity"].append(complexity_score(prompt, row["meta"]) if prompt else 0.0)
        cols["response_text"].append(row["messages"][-1]["content"] if row["messages"] else "")
    numeric = ("order", "complexity", "blank")
    return {k: np.array(v) if k in numeric else np.array(v, dtype=object)
            for k, v in cols.items()}


def _source_items(sources: list[SourceConfig], offset: int) -> list[dict]:
    items = []
    for s in sources:
        if s.format == "mapping" and not s.mapping:
            raise ValueError(f"pool source {s.path}: format 'mapping' needs a mapping")
        for f in list_files(s.path):
            items.append({"path": f, "limit": s.limit or 0, "fmt": s.format,
                          "mapping": json.dumps(s.mapping),
                          "source": s.name or Path(f).stem, "file_index": offset + len(items)})
    return items


def _testbed_records(cfg: RunConfig) -> tuple[list[dict], list[dict]]:
    tb = cfg.pool.testbed
    train, evals = testbed.generate(cfg.seed, tb.items_per_category, tb.eval_per_category,
                                    tb.categories, tb.sequential_per_depth, tb.complex_nodes,
                                    tb.complex_per_level, tb.sequential_eval_per_depth,
                                    tb.complex_eval_per_level, tb.sequential_ops)

    def records(rows, file_index):
        return [{"origin": f"testbed:{r['id']}", "raw": json.dumps(r).encode(),
                 "source": "testbed", "fmt": "messages", "mapping": "{}",
                 "order": file_index * 10**10 + k} for k, r in enumerate(rows)]

    return records(train, 0), records(evals, 1)


def _read(cfg: RunConfig, items: list[dict], records: list[dict] | None):
    import ray.data

    if records is not None:
        ds = ray.data.from_items(records)
    else:
        ds = ray.data.from_items(items).flat_map(read_records)
    return ds.map_batches(parse_batch, fn_kwargs={"max_chars": cfg.pool.max_chars},
                          batch_format="numpy", batch_size=1024).materialize()


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
    for k in ("error", "kind", "blank", "raw_text", "prompt_text", "response_text"):
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


def run_pool(cfg: RunConfig, out: Path) -> dict:
    """Write pool/shards, pool/eval.parquet, pool/rejected.jsonl and pool/stats.json."""
    import ray.data

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pc = cfg.pool
    if pc.sources:
        train_items = _source_items(pc.sources, 0)
        eval_items = _source_items(pc.eval_sources, len(train_items))
        train_recs = eval_recs = None
    else:
        train_items = eval_items = []
        train_recs, eval_recs = _testbed_records(cfg)
        (out / "ground_truth.json").write_text(json.dumps(testbed.ground_truth(), indent=2))
    log.info("pool: reading %s", [i["path"] for i in train_items] or "the synthetic testbed")
    t0 = time.time()
    parsed = _read(cfg, train_items, train_recs)
    index, blank_lines = _index(parsed)
    duplicates = _mark_duplicates(index)
    rejected = _rejected_rows(index)
    n_read, n_accepted = len(index), int((index["error"] == "").sum())
    if n_accepted == 0:
        raise ValueError(f"pool: none of {n_read} rows was accepted; first reasons: "
                         f"{[r['reason'] for r in rejected[:3]]}")
    actors = pc.embed_actors or cluster_cpus()
    # A few large batches per actor: every actor gets work, and each batch is embedded in
    # length order (less padding than small batches).
    per_batch = int(np.clip(n_accepted // (actors * 4) + 1, 256, 4096))
    log.info("pool: read and validated %d rows in %.1f s; embedding %d with %d actors",
             n_read, time.time() - t0, n_accepted, actors)
    t0 = time.time()
    embedded = (
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
    n_uncategorised = int(((index["error"] == "") & (index["category"] == "")).sum())
    if n_uncategorised:
        embedded = _assign_categories(embedded.materialize(), pc.num_clusters, cfg.seed)
    final = (embedded.map_batches(_finalise, batch_format="numpy")
             .drop_columns(["order"]).materialize())
    log.info("pool: embedded in %.1f s", time.time() - t0)
    final.write_parquet(str(out / "shards"))

    n_eval_rejected = eval_blank = 0
    eval_rows: list[dict] = []
    if eval_items or eval_recs:
        parsed_eval = _read(cfg, eval_items, eval_recs)
        eval_index, eval_blank = _index(parsed_eval)
        eval_dups = _mark_duplicates(eval_index)
        eval_rej = _rejected_rows(eval_index)
        n_eval_rejected = len(eval_rej)
        rejected += [dict(r, split="eval") for r in eval_rej]
        eval_rows = (parsed_eval.map_batches(_keep_accepted, fn_kwargs={"drop": eval_dups},
                                             batch_format="numpy")
                     .map_batches(_finalise, batch_format="numpy")
                     .drop_columns(["order"]).take_all())
    pq.write_table(pa.Table.from_pylist(eval_rows) if eval_rows else pa.table({}),
                   out / "eval.parquet")
    with open(out / "rejected.jsonl", "w") as f:
        for r in rejected:
            f.write(json.dumps(r, default=str) + "\n")

    stats_table = final.select_columns(["category", "n_tokens", "source"]).to_pandas()
    n_rejected = len(rejected) - n_eval_rejected
    stats = {
        "read": n_read,
        "blank_lines": blank_lines,
        "accepted": n_accepted,
        "rejected": n_rejected,
        "counts_add_up": n_read == n_accepted + n_rejected == len(stats_table) + n_rejected,
        "rejected_by_reason": dict(Counter(r["kind"] for r in rejected
                                           if r.get("split") != "eval")),
        "categories_assigned_by_kmeans": n_uncategorised,
        "per_category": {
            c: {"items": int(len(g)), "tokens": int(g["n_tokens"].sum())}
            for c, g in sorted(stats_table.groupby("category"), key=lambda kv: kv[0])
        },
        "per_source": {s: int(v) for s, v in stats_table["source"].value_counts().items()},
        "eval": {"read": len(eval_rows) + n_eval_rejected, "blank_lines": eval_blank,
                 "accepted": len(eval_rows), "rejected": n_eval_rejected,
                 "rejected_by_reason": dict(Counter(r["kind"] for r in rejected
                                                    if r.get("split") == "eval")),
                 "per_category": dict(Counter(r["category"] for r in eval_rows))},
    }
    if not stats["counts_add_up"]:
        raise RuntimeError(f"pool accounting does not add up: {stats}")
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    log.info("pool: read %d, accepted %d, rejected %d (%s)", n_read, n_accepted, n_rejected,
             stats["rejected_by_reason"])
    return {k: stats[k] for k in ("read", "accepted", "rejected")}

