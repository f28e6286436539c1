"""Where the driver's memory goes during pool ingest: its private memory (RSS minus shared
pages) after each step of `data.ingest`, at given pool sizes and output block sizes, each
in a fresh process with its own local Ray instance.

Steps (as bench/pool_scale.py runs them, on the same synthetic pool):
  count     lines counted per byte range (the first Ray Data run of the process)
  ingest    read, validate, hash-partitioned dedupe; the outcome materialized (one or more
            blocks per dedupe partition, at most `--block-mb` each: `ingest.BLOCK_BYTES`)
  rejected  rejected rows streamed to a JSONL file in (file, line) order (`--sort-rows` rows
            sorted at a time in the driver)
  counted   accepted rows counted per category
  dropped   the outcome released (what Ray keeps per block of it: references, lineage)
Each step prints the memory now and the peak so far, in MB above the driver's once Ray is up,
and glibc's heap (`malloc_info`, all arenas) in the same terms: in use, and freed but kept.
The summary prints, per pool size, the ingest step's growth at the largest block size over
that at the smallest, and its growth per output block. Sizes run in the given order, then
reversed on odd repeats.

    python bench/driver_phases.py [--rows 10000 1000000] [--block-mb 8 32] [--repeats 1]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pool_scale adds the repository

from pool_scale import WorkerPeak, _private, in_fresh_process, make_pool  # noqa: E402


def malloc_heap() -> tuple[int, int]:
    """glibc's heap over all arenas (`malloc_info`): bytes in use, bytes freed but kept."""
    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.NamedTemporaryFile("r", suffix=".xml") as f:
        out = libc.fopen(f.name.encode(), b"w")
        libc.malloc_info(0, out)
        libc.fclose(out)
        totals = f.read().rsplit("</heap>", 1)[-1]  # the lines after the last arena's
    free = sum(int(n) for n in re.findall(r'<total type="(?:fast|rest)" count="\d+" size="(\d+)"',
                                          totals))
    system = int(re.search(r'<system type="current" size="(\d+)"', totals).group(1))
    return system - free, free


def child(rows: int, block_mb: int, sort_rows: int, folder: Path) -> dict:
    from instructmix.runtime import prepare

    prepare()
    import psutil
    import ray

    from instructmix.cluster import ensure_ray
    from instructmix.config import PoolConfig, SourceConfig
    from instructmix.data import ingest
    from instructmix.data.read import source_items

    ingest.BLOCK_BYTES = block_mb << 20
    make_pool(folder, rows)
    ensure_ray(num_cpus=2)
    me = psutil.Process()
    gc.collect()
    base, (used0, free0) = _private(me.memory_info()), malloc_heap()
    watch, steps = WorkerPeak(), {}

    def mark(step: str) -> None:
        gc.collect()
        used, free = malloc_heap()
        steps[step] = {"now_mb": round((_private(me.memory_info()) - base) / 2**20, 1),
                       "peak_mb": round((watch.driver_private - base) / 2**20, 1),
                       "malloc_used_mb": round((used - used0) / 2**20, 1),
                       "malloc_free_mb": round((free - free0) / 2**20, 1)}

    items = source_items([SourceConfig(path=str(folder))], 0)
    tasks, lines = ingest.count(items, 32 << 20)
    mark("count")
    parsed = ingest.read_parsed(tasks, max_chars=20000, block_rows=4096, marker=None)
    ing = ingest.dedupe_and_tally(parsed, items, lines, sum(v or 0 for v in lines.values()),
                                  PoolConfig().dedupe_rows)
    mark("ingest")
    with open(folder.parent / f"rejected-{rows}-{block_mb}.jsonl", "w") as out:
        for r in ingest.rejected_records(ing, sort_rows=sort_rows):
            out.write(json.dumps(r) + "\n")
    mark("rejected")
    ingest.merged_counts(ing.rows("accepted"), ["category"])
    mark("counted")
    blocks = ing.outcome.num_blocks()
    del ing, parsed
    mark("dropped")
    watch.stop.set()
    ray.shutdown()
    return {"rows": rows, "block_mb": block_mb, "sort_rows": sort_rows, "blocks": blocks,
            "read_tasks": len(tasks), "steps": steps}


def main():
    from instructmix.data.ingest import REJECTED_SORT_ROWS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--block-mb", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--sort-rows", type=int, default=REJECTED_SORT_ROWS)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--data", default="/tmp/instructmix-pool-scale")
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        rows, block_mb = args.child
        print(json.dumps(child(rows, block_mb, args.sort_rows, Path(args.data) / str(rows))))
        return
    runs = list(itertools.product(args.rows, args.block_mb))
    results = []
    for rep in range(args.repeats):
        for rows, block_mb in (runs if rep % 2 == 0 else runs[::-1]):
            res = dict(in_fresh_process(__file__, "--child", str(rows), str(block_mb),
                                        "--sort-rows", str(args.sort_rows), "--data",
                                        args.data), repeat=rep)
            results.append(res)
            print(json.dumps(res), flush=True)
    small, large = min(args.block_mb), max(args.block_mb)
    for rows in args.rows:
        growth, blocks = {}, {}
        for r in results:
            if r["rows"] == rows:
                steps = r["steps"]
                growth.setdefault(r["block_mb"], []).append(
                    round(steps["ingest"]["now_mb"] - steps["count"]["now_mb"], 1))
                blocks[r["block_mb"]] = r["blocks"]
        fewer = blocks[small] - blocks[large]
        per_block = (max(growth[small]) - max(growth[large])) / fewer * 1024 if fewer else None
        print(json.dumps({"rows": rows, "ingest_growth_mb": growth, "blocks": blocks,
                          "ratio_ingest_growth_large_over_small_blocks": round(
                              max(growth[large]) / max(0.1, max(growth[small])), 2),
                          "kb_per_output_block": None if per_block is None else round(per_block)}))


if __name__ == "__main__":
    main()
