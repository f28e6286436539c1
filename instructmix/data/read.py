"""Reading pool files into raw records and parsing them into canonical rows (the pool
stage's first two steps; each runs as Ray Data tasks).

- `list_files`: a source path (file or folder, searched recursively) -> sorted absolute paths.
- `read_records`: one file -> raw records with their origin (`path:line`, `path:itemN`,
  `path:rowN`); JSONL, a JSON array, or Parquet.
- `parse_batch`: raw records -> canonical columns plus `error`/`kind` ('' when accepted)
  and `blank` (blank lines are not rows).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from instructmix.config import SourceConfig
from instructmix.data.complexity import complexity_score
from instructmix.data.eval_fields import NO_RESPONSE_NEEDED, eval_spec, with_eval_fields
from instructmix.data.schema import RowError, fallback_id, prompt_text, to_canonical

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


def _numbered(path: str):
    """(1-based position, origin label, raw bytes) of every row of one file."""
    if path.endswith(".parquet"):
        for k, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"row{k + 1}", json.dumps(row, default=str).encode()
    elif path.endswith(".json") and _is_json_array(path):
        with open(path, "rb") as f:
            rows = json.load(f)
        for k, row in enumerate(rows):
            yield f"item{k + 1}", json.dumps(row).encode()
    else:
        with open(path, "rb") as f:
            for k, line in enumerate(f):
                yield f"{k + 1}", line.rstrip(b"\r\n")


def read_records(item: dict) -> list[dict]:
    """One file -> raw records (bytes) with their origin; runs as a Ray task per file.
    Rows k (0-based) with k % every == offset are read, at most `limit` of them."""
    path, limit = item["path"], item["limit"]
    every, offset = item.get("every", 1), item.get("offset", 0)
    out = []
    for k, (where, raw) in enumerate(_numbered(path)):
        if limit and len(out) >= limit:
            break
        if k % every == offset:
            out.append({"origin": f"{path}:{where}", "raw": raw})
    for k, rec in enumerate(out):
        rec.update(source=item["source"], fmt=item["fmt"], mapping=item["mapping"],
                   eval=item.get("eval", ""), order=item["file_index"] * 10**10 + k)
    return out


def parse_batch(batch: dict, max_chars: int) -> dict:
    """Raw records -> canonical columns plus `error` ('' when accepted)."""
    cols = {k: [] for k in ("id", "category", "messages_json", "answer", "source", "meta",
                            "origin", "order", "error", "kind", "blank", "raw_text",
                            "prompt_text", "response_text", "complexity")}
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
