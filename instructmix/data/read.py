"""Reading pool files into parsed rows, in tasks that stream (the pool stage's first step;
`data.ingest` runs it on Ray Data).

- `list_files`: a source path (file or folder, searched recursively; local or `s3://`) ->
  sorted file URIs.
- `plan_reads`: files -> read tasks: JSONL files are cut into byte ranges (`data.chunks`),
  a Parquet file is read one record batch at a time, a JSON array file whole (one task).
- `count_lines`: a byte range -> its newline count (the independent line count per file).
- `read_range`: one read task -> blocks of at most `block_rows` parsed rows, each with its
  origin (`path:line`, `path:itemN`, `path:rowN`) and file.
- `parse_batch`: raw records -> canonical columns plus `error`/`kind` ('' when accepted)
  and `blank` (blank lines are not rows).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from instructmix import storage
from instructmix.config import SourceConfig
from instructmix.data import chunks
from instructmix.data.complexity import complexity_score
from instructmix.data.eval_fields import NO_RESPONSE_NEEDED, eval_spec, with_eval_fields
from instructmix.data.schema import RowError, fallback_id, prompt_text, to_canonical

RAW_KEEP = 500  # characters of a rejected row kept for the report
SUFFIXES = (".jsonl", ".json", ".parquet")
ORDER_STRIDE = 10**10  # order = file index x stride + position in the file
LABEL = {"lines": "", "array": "item", "parquet": "row"}  # origin: path:{label}{position}


def list_files(path: str) -> list[str]:
    fs, inner = storage.filesystem(path)
    info = fs.get_file_info(inner)
    uri = (lambda p: f"s3://{p}") if storage.is_remote(path) else (lambda p: p)
    if info.type == pafs.FileType.File:
        return [uri(inner)]
    if info.type == pafs.FileType.Directory:
        found = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
        files = sorted(uri(f.path) for f in found
                       if f.type == pafs.FileType.File and f.path.endswith(SUFFIXES))
        if files:
            return files
        raise FileNotFoundError(f"pool source {path}: no .jsonl/.json/.parquet files inside")
    raise FileNotFoundError(f"pool source not found: {path}")


def _open(uri: str):
    fs, inner = storage.filesystem(uri)
    return fs.open_input_file(inner)


def _kind(fs, inner: str) -> str:
    """'parquet', 'array' (a .json file that starts with '['), else 'lines' (JSON lines)."""
    if inner.endswith(".parquet"):
        return "parquet"
    if inner.endswith(".json"):
        with fs.open_input_file(inner) as f:
            if f.read(4096).lstrip().startswith(b"["):
                return "array"
    return "lines"


def plan_reads(items: list[dict], chunk_bytes: int) -> list[dict]:
    """One read task per byte range of a JSON-lines file, one per other file."""
    tasks = []
    for item in items:
        fs, inner = storage.filesystem(item["path"])
        kind, size = _kind(fs, inner), fs.get_file_info(inner).size
        spans = chunks.byte_ranges(size, chunk_bytes) if kind == "lines" else [(0, size)]
        for start, end in spans:
            tasks.append(dict(item, kind=kind, start=start, end=end, first=0))
    return tasks


def count_lines(task: dict) -> dict:
    """The independent count of a read task's file: shifted newlines of a byte range
    (`data.chunks`), rows in a Parquet file's metadata; None for a JSON array (its items
    are counted as read)."""
    if task["kind"] == "lines":
        with _open(task["path"]) as f:
            n = chunks.count_newlines(f, task["start"], task["end"])
    elif task["kind"] == "parquet":
        with _open(task["path"]) as f:
            n = pq.ParquetFile(f).metadata.num_rows
    else:
        n = -1
    return dict(task, newlines=n)


def _positions(task: dict, block_rows: int):
    """(position, raw bytes) of every row of one read task, a block at a time."""
    kind = task["kind"]
    with _open(task["path"]) as f:
        if kind == "lines":
            yield from chunks.iter_lines(f, task["start"], task["end"], task["first"])
        elif kind == "parquet":
            k = 0
            for batch in pq.ParquetFile(f).iter_batches(batch_size=block_rows):
                for row in batch.to_pylist():
                    yield k, json.dumps(row, default=str).encode()
                    k += 1
        else:
            try:
                rows = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError):
                rows = None
            if not isinstance(rows, list):  # starts with '[' but is JSON lines after all
                yield from chunks.iter_lines(f, 0, task["end"], 0)
                return
            for k, row in enumerate(rows):
                yield k, json.dumps(row).encode()


def selected(k: int, every: int, offset: int, limit: int) -> bool:
    """Row k (0-based, blank lines included) is read when k % every == offset, the first
    `limit` of those (0: all)."""
    return k % every == offset and (not limit or k // every < limit)


def n_selected(rows: int, every: int, offset: int, limit: int) -> int:
    n = max(0, -(-(rows - offset) // every))
    return min(n, limit) if limit else n


def read_range(batch: dict, max_chars: int, block_rows: int):
    """One read task (a batch of one) -> blocks of at most `block_rows` parsed rows."""
    task = {k: v[0].item() if hasattr(v[0], "item") else v[0] for k, v in batch.items()}
    keep = (task["every"], task["offset"], task["limit"])
    base = task["file_index"] * ORDER_STRIDE
    label = f"{task['path']}:{LABEL[task['kind']]}"
    fixed = {k: task[k] for k in ("source", "fmt", "mapping", "eval")}
    records = []
    for k, raw in _positions(task, block_rows):
        if not selected(k, *keep):
            continue
        records.append({"origin": f"{label}{k + 1}", "raw": raw, "order": base + k})
        if len(records) == block_rows:
            yield parse_batch(_columns(records, fixed, task["path"]), max_chars)
            records = []
    if records:
        yield parse_batch(_columns(records, fixed, task["path"]), max_chars)


def _columns(records: list[dict], fixed: dict, path: str) -> dict:
    n = len(records)
    out = {k: [r[k] for r in records] for k in ("origin", "raw", "order")}
    out.update({k: [v] * n for k, v in fixed.items()}, file=[path] * n)
    return out


def parse_batch(batch: dict, max_chars: int) -> dict:
    """Raw records -> canonical columns plus `error` ('' when accepted)."""
    cols = {k: [] for k in ("id", "category", "messages_json", "answer", "source", "meta",
                            "origin", "order", "error", "kind", "blank", "raw_text",
                            "prompt_text", "response_text", "complexity", "file")}
    n = len(batch["origin"])
    specs = batch.get("eval", [""] * n)  # eval sources: the scorer's settings (JSON)
    for k in range(n):
        raw, origin = batch["raw"][k], str(batch["origin"][k])
        fmt, source = str(batch["fmt"][k]), str(batch["source"][k])
        mapping = json.loads(batch["mapping"][k])
        spec = json.loads(specs[k]) if specs[k] else None
        row, error, kind, text = None, "", "", ""
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError as e:
            error, kind = f"not valid UTF-8 (byte {e.start})", "not valid UTF-8"
            text = raw.decode("utf-8", errors="replace")
        blank = not error and not text.strip()
        if not error and not blank:
            try:
                obj = json.loads(text)
                row = to_canonical(obj, fmt, mapping, source, fallback_id(source, origin),
                                   not spec or spec["scorer"] not in NO_RESPONSE_NEEDED)
                if spec:
                    row = with_eval_fields(row, obj, spec)
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
        cols["file"].append(str(batch["file"][k]) if "file" in batch else
                            origin.rsplit(":", 1)[0])
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


def source_items(sources: list[SourceConfig], offset: int) -> list[dict]:
    """One item per file of `sources`; eval sources (`EvalSourceConfig`) carry `eval`, the
    settings of their scorer."""
    items = []
    for s in sources:
        if s.format == "mapping" and not s.mapping:
            raise ValueError(f"pool source {s.path}: format 'mapping' needs a mapping")
        for f in list_files(s.path):
            items.append({"path": f, "limit": s.limit or 0, "every": s.every,
                          "offset": s.offset, "fmt": s.format,
                          "mapping": json.dumps(s.mapping),
                          "eval": eval_spec(s) if hasattr(s, "scorer") else "",
                          "source": s.name or Path(f).stem, "file_index": offset + len(items)})
    return items
