"""Pool stage (Ray Data) rows/s against a plain single-process loop, side by side.

Both do the same job on the same file: read the JSONL rows, validate them into the
canonical schema (`to_canonical`), drop duplicate ids, embed the prompts with the same
model (all-MiniLM-L6-v2, same truncation, length-sorted batches), count tokens and write
Parquet; both times include loading the embedder. The plain loop uses every core through
torch threads; the Ray stage runs the same work as tasks and an actor pool (plus its
accounting: rejected rows, stats). Ray start-up is excluded (a cluster is up before a stage
runs).

    python bench/pool_throughput.py [--rows 5000] [--source testbed|niv2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instructmix.runtime import prepare  # noqa: E402

prepare()
from instructmix.cluster import ensure_ray  # noqa: E402
from instructmix.config import RunConfig, TestbedConfig  # noqa: E402
from instructmix.data.embed import TextEncoder, embed_in_length_order  # noqa: E402
from instructmix.data.pool import run_pool  # noqa: E402
from instructmix.data.schema import RowError, prompt_text, to_canonical  # noqa: E402
from instructmix.data.testbed import generate  # noqa: E402
from instructmix.layout import RunLayout  # noqa: E402

NIV2 = Path(__file__).resolve().parents[2] / "shared/data/niv2/niv2_definitions_pos_example.jsonl"


def rows_for(source: str, n: int) -> list[dict]:
    if source == "niv2":
        if not NIV2.is_file():
            sys.exit(f"--source niv2 needs {NIV2}")
        lines = NIV2.read_text().splitlines()
        rows = [json.loads(x) for x in lines]
        rows = [{"instruction": r["instruction"], "input": r.get("input") or "",
                 "output": r["output"], "id": f"r{k}"} for k, r in
                enumerate(rows * (n // len(rows) + 1))][:n]
        return rows
    train, _ = generate(0, TestbedConfig(items_per_category=n // 9 + 1, eval_per_category=1))
    return [{"instruction": r["messages"][0]["content"], "input": "",
             "output": r["answer"], "id": r["id"]} for r in train[:n]]


def plain_loop(src: Path, batch: int, out: Path) -> float:
    """The pool's job in one process: read, validate, dedupe, embed, count, write."""
    t0 = time.perf_counter()
    enc = TextEncoder("minilm", None, 128, threads=os.cpu_count())
    rows, seen = [], set()
    with open(src, "rb") as f:
        for k, line in enumerate(f):
            try:
                row = to_canonical(json.loads(line), "alpaca", {}, "rows", f"rows-{k}")
            except (ValueError, RowError):
                continue
            if row["id"] not in seen:
                seen.add(row["id"])
                rows.append(row)
    prompts = [prompt_text(r["messages"]) for r in rows]
    emb = embed_in_length_order(enc, prompts, batch)
    n_tokens = enc.count_tokens([f"{p}\n{r['messages'][-1]['content']}"
                                 for p, r in zip(prompts, rows, strict=True)])
    table = pa.Table.from_pylist(rows).append_column("n_tokens", pa.array(n_tokens))
    table = table.append_column("embedding", pa.array(list(emb)))
    pq.write_table(table, out)
    return time.perf_counter() - t0


def ray_stage(src: Path, batch: int, tmp: Path) -> float:
    cfg = RunConfig.model_validate({"run_dir": str(tmp / "run"), "pool": {
        "sources": [{"path": str(src), "format": "alpaca"}], "embed_batch_size": batch}})
    t0 = time.perf_counter()
    run_pool(cfg, RunLayout(tmp / "run", "pool"))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--source", choices=["testbed", "niv2"], default="testbed")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    rows = rows_for(args.source, args.rows)
    ensure_ray()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "rows.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in rows))
        t_ray = ray_stage(src, args.batch, Path(tmp))
        t_plain = plain_loop(src, args.batch, Path(tmp) / "plain.parquet")
    print(json.dumps({
        "bench": "pool_throughput", "source": args.source, "rows": len(rows),
        "cpus": os.cpu_count(),
        "plain_loop_rows_per_s": round(len(rows) / t_plain, 1),
        "ray_pool_stage_rows_per_s": round(len(rows) / t_ray, 1),
        "ratio_ray_over_plain": round(t_plain / t_ray, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
