"""Ingest on Ray Data: count -> read and parse -> (decontaminate) -> dedupe -> tally. The
driver holds counts and at most one range of rejected rows (as Arrow); what else it keeps
grows with Ray's records of the blocks and tasks and with memory its allocators keep, about
2 MB per million rows here (docs/RESULTS.md, bench/driver_phases.py).

1. Count: one task per byte range counts newlines (`read.count_lines`), so every file has a
   line count that decodes nothing; Parquet files count from their metadata.
2. Read: one task per range streams blocks of parsed rows (`read.read_range`).
3. Dedupe: rows are hash-partitioned by id into partitions of about `pool.dedupe_rows`
   rows (Ray Data `repartition(keys=...)`: blocks of at most `BLOCK_BYTES` per partition;
   a pool of one partition is gathered into one task without a shuffle); within a
   partition the first row of an id by (file, line) wins and the others are rejected
   naming it. Rows rejected while parsing are spread by their origin, not piled on the
   empty id.
4. Tally: every row read has one `status` ('accepted', 'blank', or its rejection kind);
   counts per (file, status) are made per block and merged (`merged_counts`). Per file,
   lines = not sampled + blank + accepted + rejected must hold, the lines counted in
   step 1 and the rest from the rows themselves.
5. Rejected rows: formatted by the workers, written in (file, line) order by range of
   about `REJECTED_SORT_ROWS` rows (`rejected_lines`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from instructmix.cluster import with_progress
from instructmix.data import chunks
from instructmix.data.read import count_lines, n_selected, plan_reads, read_range

log = logging.getLogger("instructmix")
# Bytes of blocks one shuffle map task takes (Ray Data's default, 1 GiB, made the map
# tasks' memory grow with the pool: 0.9 GB private at 1M rows); raised only to keep shards
# of at least MIN_SHARD_BYTES when there are many partitions.
SHUFFLE_MAP_BYTES = 32 << 20
# A map task's output for one partition, at least (one shard file of the disk shuffle: the
# file count is map tasks x partitions).
MIN_SHARD_BYTES = 256 << 10
# Largest block a task emits (Ray Data's default, 128 MiB, made a read task hold its whole
# 32 MiB byte range of parsed rows before emitting it).
BLOCK_BYTES = 8 << 20
# Rejected rows the driver sorts at once when writing them (a row is at most RAW_KEEP
# characters of its line and a reason): about 2 MB.
REJECTED_SORT_ROWS = 5_000
MAX_SORT_RANGES = 256  # spool files open at once; past this, ranges grow instead
REJECTED_COLUMNS = ["order", "origin", "source", "id", "kind", "error", "raw_text"]
SPOOL_SCHEMA = pa.schema([("order", pa.int64()), ("line", pa.large_string())])


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
                                        batch_format="pyarrow")


def _pick(table: pa.Table, which: str) -> pa.Table:
    status = table["status"]
    if which == "accepted":
        keep = pc.equal(status, "accepted")
    elif which == "rejected":
        keep = pc.invert(pc.is_in(status, pa.array(["accepted", "blank"])))
    else:
        raise ValueError(f"which: {which!r}")
    return table.filter(keep)


def _with_shuffle_key(batch: dict) -> dict:
    """The id of a live row; the origin of a blank or already rejected one."""
    live = (batch["error"] == "") & ~batch["blank"].astype(bool)
    batch["shuffle_key"] = np.where(live, batch["id"], batch["origin"]).astype(object)
    return batch


def _first_wins(table: pa.Table) -> pa.Table:
    """One partition, in Arrow (text columns are never made Python objects): every id's
    first row by (file, line) wins; rows rejected while parsing and blank lines pass
    through. Adds `status`: 'accepted', 'blank' or the rejection kind."""
    table = table.drop_columns(["shuffle_key"]).take(pc.sort_indices(table["order"]))
    blank = table["blank"].to_numpy().astype(bool)
    kind = table["kind"].to_numpy(zero_copy_only=False).astype(object)
    live = (table["error"].to_numpy(zero_copy_only=False) == "") & ~blank
    ids = table["id"].to_numpy(zero_copy_only=False)
    dup = live & pd.Series(ids).where(live).duplicated(keep="first").to_numpy()
    if dup.any():
        wanted = set(ids[dup])
        origins = table["origin"].to_numpy(zero_copy_only=False)
        first = {i: o for i, o in zip(ids[live & ~dup], origins[live & ~dup], strict=True)
                 if i in wanted}
        error = table["error"].to_numpy(zero_copy_only=False).astype(object)
        error[dup] = [f"duplicate id {i!r} (first at {first[i]})" for i in ids[dup]]
        kind[dup] = "duplicate id"
        mask = pa.array(dup)
        for name, values in (("error", pa.array(error, pa.string())),
                             ("kind", pa.array(kind, pa.string())),
                             ("raw_text", pc.if_else(mask, "", table["raw_text"]))):
            table = table.set_column(table.schema.get_field_index(name), name, values)
    status = np.where(blank, "blank", np.where(kind == "", "accepted", kind))
    return table.append_column("status", pa.array(status, pa.string()))


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


def dedupe_and_tally(parsed, items: list[dict], lines: dict, expected_rows: int,
                     dedupe_rows: int) -> Ingested:
    """Every parsed row gets its status; duplicate ids are found on hash partitions of
    about `dedupe_rows` rows (one partition for a small pool: no shuffle)."""
    from ray.data.context import ShuffleStrategy

    partitions = max(1, -(-expected_rows // dedupe_rows))
    keyed = parsed.map_batches(_with_shuffle_key, batch_format="numpy")
    # hashed on the id itself, so partitions are of even size (see DECISIONS)
    keyed = keyed.repartition(partitions, keys=["shuffle_key"] if partitions > 1 else None)
    outcome = keyed.map_batches(_first_wins, batch_format="pyarrow", batch_size=None)
    outcome.context.shuffle_strategy = ShuffleStrategy.SHUFFLE_V2  # one block a partition
    # Shards go to files on each node (served to the reducers over Arrow Flight), not to the
    # object store: Ray's record of each shard object made the driver grow with map tasks x
    # partitions, i.e. with the square of the rows (see DECISIONS).
    outcome.context.use_disk_based_hash_shuffle = True
    outcome.context.shuffle_compression = None
    outcome.context.shuffle_input_batch_bytes = max(SHUFFLE_MAP_BYTES,
                                                    partitions * MIN_SHARD_BYTES)
    outcome.context.target_max_block_size = BLOCK_BYTES
    outcome = with_progress(outcome, outcome.materialize)
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
    columns = keys + ([total] if total else [])
    counted = ds.select_columns(columns).map_batches(
        _block_counts, fn_kwargs={"keys": keys, "total": total}, batch_format="numpy",
        batch_size=None)
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
           dedupe_rows: int, marker: dict | None = None) -> Ingested:
    """Files of `items` (`read.source_items`) -> `Ingested`."""
    tasks, lines = count(items, chunk_bytes)
    expected = sum(v or 0 for v in lines.values())
    log.info("pool: %d files, %d lines counted, %d read tasks", len(items), expected,
             len(tasks))
    return dedupe_and_tally(read_parsed(tasks, max_chars, block_rows, marker), items, lines,
                            expected, dedupe_rows)


def ingest_records(records: list[dict], max_chars: int, dedupe_rows: int,
                   marker: dict | None = None) -> Ingested:
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
    return dedupe_and_tally(ds, items, lines, len(records), dedupe_rows)


def rejected_lines(ing: Ingested, split: str | None = None,
                   sort_rows: int = REJECTED_SORT_ROWS):
    """The rejected rows as the text of `rejected.jsonl`, in (file, line) order: chunks of
    bytes, one per range of about `sort_rows` rows (cut at quantiles of a sample of `order`).

    Workers write each row's JSON line and its range; the driver appends each block's lines,
    as Arrow, to a local spool file per range, then sorts the ranges one at a time. It holds
    one range and makes no Python object per row: Ray Data's sort grew the driver with the
    pool, and rows made into Python objects here left its small-object arenas fragmented
    (see DECISIONS)."""
    n = sum(ing.rejected_by_reason.values())
    if not n:
        return
    rows = ing.rows("rejected").select_columns(REJECTED_COLUMNS)
    bounds = _range_bounds(rows, min(MAX_SORT_RANGES, -(-n // sort_rows)), n)
    lines = rows.map_batches(_json_lines, fn_kwargs={"bounds": bounds, "split": split},
                             batch_format="pyarrow")
    with tempfile.TemporaryDirectory(prefix="instructmix-rejected-") as tmp:
        spools: dict[int, tuple] = {}
        try:
            for batch in lines.iter_batches(batch_format="pyarrow", batch_size=None):
                batch = batch.sort_by("range")
                ranges = batch["range"].to_numpy()
                starts = np.flatnonzero(np.diff(ranges, prepend=-1))
                for start, stop in zip(starts, [*starts[1:], len(ranges)], strict=True):
                    k = int(ranges[start])
                    if k not in spools:
                        sink = pa.OSFile(os.path.join(tmp, f"{k}.arrow"), "wb")
                        spools[k] = sink, pa.ipc.new_stream(sink, SPOOL_SCHEMA)
                    spools[k][1].write_table(
                        batch.slice(start, stop - start).select(SPOOL_SCHEMA.names))
        finally:
            for sink, writer in spools.values():
                writer.close()
                sink.close()
        for k in sorted(spools):
            path = os.path.join(tmp, f"{k}.arrow")
            with pa.memory_map(path) as source:
                text = pa.ipc.open_stream(source).read_all().sort_by("order")["line"]
                yield _joined(text.combine_chunks())
            del text
            os.remove(path)  # its disk space goes now, not at the end
            pa.default_memory_pool().release_unused()


def _json_lines(table: pa.Table, bounds: np.ndarray, split: str | None) -> pa.Table:
    """Each rejected row as its line of `rejected.jsonl`, with its sort key and range."""
    lines = []
    for r in table.to_pylist():
        out = {"origin": r["origin"], "source": r["source"], "id": r["id"], "kind": r["kind"],
               "reason": r["error"], "raw_text": r["raw_text"]}
        if split:
            out["split"] = split
        lines.append(json.dumps(out) + "\n")
    order = table["order"].to_numpy().astype(np.int64)
    return pa.table({"order": order,
                     "range": np.searchsorted(bounds, order, side="right").astype(np.int32),
                     "line": pa.array(lines, type=pa.large_string())})


def _joined(text: pa.LargeStringArray) -> bytes:
    """The strings of `text` end to end (they lie in order in its data buffer)."""
    if not len(text):
        return b""
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[
        text.offset:text.offset + len(text) + 1]
    return text.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


def _range_bounds(rows, ranges: int, n: int) -> np.ndarray:
    """`order` values that cut the `n` rows of `rows` into `ranges` of about equal size."""
    if ranges == 1:
        return np.array([], dtype=np.int64)
    every = max(1, n // (ranges * 100))  # about 100 sampled rows per range
    sample = np.concatenate([b["order"] for b in rows.select_columns(["order"]).map_batches(
        _every_nth, fn_kwargs={"every": every}, batch_format="numpy").iter_batches(
        batch_format="numpy", batch_size=None)])
    return np.unique(np.quantile(sample, np.arange(1, ranges) / ranges).astype(np.int64))


def _every_nth(batch: dict, every: int) -> dict:
    return {"order": batch["order"][::every]}


def first_reasons(ing: Ingested, n: int = 3) -> list[str]:
    return [r["reason"] for r in ing.rows("rejected").select_columns(["error"]).rename_columns(
        {"error": "reason"}).take(n)]


def per_file_problems(ing: Ingested) -> list[str]:
    return [f"{path}: {json.dumps(c)}" for path, c in ing.per_file.items() if not c["adds_up"]]
