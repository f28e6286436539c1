"""Ingest on Ray Data: count -> read and parse -> (decontaminate) -> dedupe -> tally, at a
driver memory that does not grow with the number of rows.

1. Count: one task per byte range counts newlines (`read.count_lines`), so every file has a
   line count that decodes nothing; Parquet files count from their metadata.
2. Read: one task per range streams blocks of parsed rows (`read.read_range`).
3. Dedupe: rows are hash-partitioned by id (crc32 of the id into buckets of about
   `BUCKET_ROWS` rows, Ray Data `groupby(...).map_groups`; a pool of one bucket is
   gathered into one task without a shuffle); within a bucket the first row of an id by
   (file, line) wins and the others are rejected naming it.
4. Tally: every row read has one `status` ('accepted', 'blank', or its rejection kind);
   counts per (file, status) are made per block and merged (`merged_counts`). Per file,
   lines = not sampled + blank + accepted + rejected must hold, the lines counted in
   step 1 and the rest from the rows themselves.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from instructmix.data import chunks
from instructmix.data.read import count_lines, n_selected, plan_reads, read_range

log = logging.getLogger("instructmix")
BUCKET_ROWS = 50_000  # rows per dedupe bucket (the memory one dedupe task needs)
# Bytes of blocks one shuffle map task takes (Ray Data's default, 1 GiB, made the map
# tasks' memory grow with the pool: 0.9 GB private at 1M rows).
SHUFFLE_MAP_BYTES = 32 << 20


@dataclass
class Ingested:
    outcome: object  # materialized dataset: every row read, with `status`
    read: int = 0  # rows read (blank lines are not rows)
    blank: int = 0
    by_status: dict = field(default_factory=dict)
    per_file: dict = field(default_factory=dict)
    uncategorised: int = 0  # accepted rows without a category

    @property
    def accepted(self) -> int:
        return self.by_status.get("accepted", 0)

    @property
    def rejected_by_reason(self) -> dict:
        return {k: v for k, v in self.by_status.items() if k not in ("accepted", "blank")}

    def rows(self, which: str):
        """'accepted' or 'rejected' rows, lazily."""
        return self.outcome.map_batches(_pick, fn_kwargs={"which": which},
                                        batch_format="numpy")


def _pick(batch: dict, which: str) -> dict:
    status = batch["status"]
    if which == "accepted":
        keep = status == "accepted"
    elif which == "rejected":
        keep = (status != "accepted") & (status != "blank")
    else:
        raise ValueError(f"which: {which!r}")
    return {k: v[keep] for k, v in batch.items()}


def _with_status(batch: dict) -> dict:
    blank = batch["blank"].astype(bool)
    batch["status"] = np.array(["blank" if b else (k or "accepted") for b, k in
                                zip(blank, batch["kind"], strict=True)], dtype=object)
    return batch


def _bucket(batch: dict, buckets: int) -> dict:
    batch["bucket"] = np.array([zlib.crc32(str(i).encode()) % buckets for i in batch["id"]],
                               dtype=np.int64)
    return batch


def _first_wins(df):
    """One bucket (pandas): every id's first row by (file, line) wins; rows rejected while
    parsing and blank lines pass through."""
    df = df.sort_values("order", kind="stable")
    live = ((df["error"] == "") & ~df["blank"].astype(bool)).to_numpy()
    dup = live & df["id"].where(live).duplicated(keep="first").to_numpy()
    if dup.any():
        first = df[live & ~dup].set_index("id")["origin"]
        ids = df["id"].to_numpy()[dup]
        df.loc[dup, "error"] = [f"duplicate id {i!r} (first at {first[i]})" for i in ids]
        df.loc[dup, "kind"] = "duplicate id"
        df.loc[dup, "raw_text"] = ""
    return _with_status(df.drop(columns="bucket"))


def read_parsed(tasks: list[dict], max_chars: int, block_rows: int, marker: dict | None):
    """The counted read tasks -> a lazy dataset of parsed rows."""
    import ray.data

    ds = ray.data.from_items(tasks, override_num_blocks=max(1, len(tasks))).map_batches(
        read_range, fn_kwargs={"max_chars": max_chars, "block_rows": block_rows},
        batch_size=1, batch_format="numpy")
    if marker is not None:  # decontamination against the eval set (`data.decontam`)
        from instructmix.data import decontam

        ds = ds.map_batches(decontam.mark_batch, fn_kwargs=marker, batch_format="numpy",
                            batch_size=block_rows)
    return ds


def count(items: list[dict], chunk_bytes: int) -> tuple[list[dict], dict]:
    """Read tasks with their first line index, and {file: lines} (None: counted as read)."""
    import ray.data

    tasks = plan_reads(items, chunk_bytes)
    if not tasks:
        return [], {}
    return number_lines(ray.data.from_items(tasks, override_num_blocks=len(tasks)).map(
        count_lines).take_all())


def number_lines(counted: list[dict]) -> tuple[list[dict], dict]:
    """Counted read tasks (`read.count_lines`) -> the tasks with their first line index,
    and {file: lines} (None for a JSON array: counted as read)."""
    counted = sorted(counted, key=lambda t: (t["file_index"], t["start"]))
    by_file: dict[str, list[dict]] = defaultdict(list)
    for t in counted:
        by_file[t["path"]].append(t)
    lines = {}
    for path, parts in by_file.items():
        kind, size = parts[0]["kind"], parts[-1]["end"]
        if kind == "lines":
            firsts = chunks.first_line_indices([(t["start"], t["newlines"]) for t in parts])
            for t, first in zip(parts, firsts, strict=True):
                t["first"] = first
            lines[path] = chunks.line_count(size, sum(t["newlines"] for t in parts))
        else:
            lines[path] = parts[0]["newlines"] if kind == "parquet" else None
    return [{k: v for k, v in t.items() if k != "newlines"} for t in counted], lines


def dedupe_and_tally(parsed, items: list[dict], lines: dict, expected_rows: int) -> Ingested:
    """Every parsed row gets its status; duplicate ids are found on hash partitions (one
    partition for a small pool: no shuffle needed to put it in one task)."""
    buckets = max(1, -(-expected_rows // BUCKET_ROWS))
    bucketed = parsed.map_batches(_bucket, fn_kwargs={"buckets": buckets},
                                  batch_format="numpy")
    if buckets == 1:
        outcome = bucketed.repartition(1).map_batches(_first_wins, batch_format="pandas",
                                                      batch_size=None)
    else:
        outcome = bucketed.groupby("bucket", num_partitions=buckets).map_groups(
            _first_wins, batch_format="pandas")
        outcome.context.shuffle_input_batch_bytes = SHUFFLE_MAP_BYTES
    outcome = outcome.materialize()
    counts = merged_counts(outcome, ["file", "status", "category"])
    ing = _tally(outcome, [{"file": f, "status": st, "count()": n}
                           for (f, st, _), n in counts.items()], items, lines)
    ing.uncategorised = sum(n for (_, st, c), n in counts.items()
                            if st == "accepted" and c == "")
    return ing


def _block_counts(batch: dict, keys: list[str], total: str | None) -> dict:
    """One row per distinct key in the block: its rows (and the sum of `total`)."""
    sums: Counter = Counter()
    rows: Counter = Counter()
    values = batch[total] if total else [0] * len(batch[keys[0]])
    for k, v in zip(zip(*(batch[c] for c in keys), strict=True), values, strict=True):
        rows[k] += 1
        sums[k] += int(v)
    return {"key": np.array([json.dumps(list(k)) for k in rows], dtype=object),
            "rows": np.array(list(rows.values()), dtype=np.int64),
            "total": np.array([sums[k] for k in rows], dtype=np.int64)}


def merged_counts(ds, keys: list[str], total: str | None = None) -> dict:
    """{key tuple: rows} (with `total`: {key: (rows, sum of total)}) over `ds`: counted per
    block in the workers and merged here as the blocks stream past, so the driver holds
    only the distinct keys (a shuffle would cost more than the count on small pools)."""
    rows: Counter = Counter()
    sums: Counter = Counter()
    counted = ds.map_batches(_block_counts, fn_kwargs={"keys": keys, "total": total},
                             batch_format="numpy", batch_size=None)
    for r in counted.iter_rows():
        k = tuple(json.loads(r["key"]))
        rows[k] += int(r["rows"])
        sums[k] += int(r["total"])
    return {k: (n, sums[k]) if total else n for k, n in rows.items()}


def _tally(outcome, tallies: list[dict], items: list[dict], lines: dict) -> Ingested:
    by_status, per_file = Counter(), {}
    counts: dict[str, Counter] = defaultdict(Counter)
    for t in tallies:
        n = int(t["count()"])
        by_status[t["status"]] += n
        counts[t["file"]][t["status"]] += n
    for item in items:
        c, path = counts.get(item["path"], Counter()), item["path"]
        rows = sum(c.values())  # blank lines included: they are lines of the file
        total = lines.get(path)
        method = "newlines" if path.endswith((".jsonl", ".json")) else "parquet metadata"
        if total is None:  # a JSON array: its items are counted as they are read
            total, method = rows, "items read (JSON array)"
        kept = n_selected(total, item["every"], item["offset"], item["limit"])
        per_file[path] = {
            "lines": total, "counted_by": method, "not_sampled": total - kept,
            "blank": c["blank"], "accepted": c["accepted"],
            "rejected": rows - c["blank"] - c["accepted"],
            "adds_up": total == (total - kept) + rows}
    read = sum(by_status.values()) - by_status["blank"]
    return Ingested(outcome, read, by_status["blank"], dict(by_status), per_file)


def ingest(items: list[dict], max_chars: int, chunk_bytes: int, block_rows: int,
           marker: dict | None = None) -> Ingested:
    """Files of `items` (`read.source_items`) -> `Ingested`."""
    tasks, lines = count(items, chunk_bytes)
    expected = sum(v or 0 for v in lines.values())
    log.info("pool: %d files, %d lines counted, %d read tasks", len(items), expected,
             len(tasks))
    return dedupe_and_tally(read_parsed(tasks, max_chars, block_rows, marker), items, lines,
                            expected)


def ingest_records(records: list[dict], max_chars: int, marker: dict | None = None) -> Ingested:
    """Rows made in the driver (the testbed), as records with `raw` JSON bytes."""
    import ray.data

    from instructmix.data.read import parse_batch

    ds = ray.data.from_items(records).map_batches(
        parse_batch, fn_kwargs={"max_chars": max_chars}, batch_format="numpy",
        batch_size=1024)
    if marker is not None:
        from instructmix.data import decontam

        ds = ds.map_batches(decontam.mark_batch, fn_kwargs=marker, batch_format="numpy",
                            batch_size=1024)
    lines = Counter(r["file"] for r in records)
    items = [{"path": f, "every": 1, "offset": 0, "limit": 0} for f in sorted(lines)]
    return dedupe_and_tally(ds, items, lines, len(records))


def rejected_records(ing: Ingested, split: str | None = None):
    """Rejected rows in (file, line) order, one at a time (for `rejected.jsonl`)."""
    if not sum(ing.rejected_by_reason.values()):
        return
    cols = ["order", "origin", "source", "id", "kind", "error", "raw_text"]
    rows = ing.rows("rejected").select_columns(cols).sort("order")
    for r in rows.iter_rows():
        out = {"origin": r["origin"], "source": r["source"], "id": r["id"],
               "kind": r["kind"], "reason": r["error"], "raw_text": r["raw_text"]}
        yield dict(out, split=split) if split else out


def first_reasons(ing: Ingested, n: int = 3) -> list[str]:
    return [r["reason"] for r in ing.rows("rejected").select_columns(["error"]).rename_columns(
        {"error": "reason"}).take(n)]


def per_file_problems(ing: Ingested) -> list[str]:
    return [f"{path}: {json.dumps(c)}" for path, c in ing.per_file.items() if not c["adds_up"]]
