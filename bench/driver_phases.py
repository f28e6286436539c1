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
and in the same terms where it lies: glibc's heap (`malloc_info`, all arenas: in use, and
freed but kept), chunks glibc mapped on their own, and Python's small-object arenas (and the
objects in them).
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
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pool_scale adds the repository

from pool_scale import WorkerPeak, _private, in_fresh_process, make_pool  # noqa: E402


def malloc_heap() -> tuple[int, int, int]:
    """glibc's heap over all arenas (`malloc_info`): bytes in use, bytes freed but kept, and
    bytes in chunks glibc mapped on their own (large allocations, outside the arenas)."""
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
    mapped = int(re.search(r'<total type="mmap" count="\d+" size="(\d+)"', totals).group(1))
    system = int(re.search(r'<system type="current" size="(\d+)"', totals).group(1))
    return system - free, free, mapped


def pymalloc_arenas() -> tuple[int, int]:
    """Python's small-object allocator (`sys._debugmallocstats`, mapped apart from glibc's
    heap): bytes of its arenas, and bytes of objects in them."""
    with tempfile.TemporaryFile("w+") as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()
    arenas = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    used = re.search(r"# bytes in allocated blocks\s+=\s+([\d,]+)", text)
    return int(arenas.group(1)) * int(arenas.group(2)), int(used.group(1).replace(",", ""))


def ingest_steps(folder: Path, rejected: Path, sort_rows: int, mark) -> tuple[int, int]:
    """The steps of the module doc on the pool in `folder` (Ray is up), `mark(step)` after
    each; returns (blocks of the outcome, read tasks)."""
    from instructmix.config import PoolConfig, SourceConfig
    from instructmix.data import ingest
    from instructmix.data.read import source_items

    items = source_items([SourceConfig(path=str(folder))], 0)
    tasks, lines = ingest.count(items, 32 << 20)
    mark("count")
    parsed = ingest.read_parsed(tasks, max_chars=20000, block_rows=4096, marker=None)
    ing = ingest.dedupe_and_tally(parsed, items, lines, sum(v or 0 for v in lines.values()),
                                  PoolConfig().dedupe_rows)
    mark("ingest")
    with open(rejected, "wb") as out:  # writelines: no chunk stays referenced after
        out.writelines(ingest.rejected_lines(ing, sort_rows=sort_rows))
    mark("rejected")
    ingest.merged_counts(ing.rows("accepted"), ["category"])
    mark("counted")
    blocks = ing.outcome.num_blocks()
    del ing, parsed
    mark("dropped")
    return blocks, len(tasks)


def child(rows: int, block_mb: int, sort_rows: int, folder: Path) -> dict:
    from instructmix.runtime import prepare

    prepare()
    import psutil
    import ray

    from instructmix.cluster import ensure_ray
    from instructmix.data import ingest

    ingest.BLOCK_BYTES = block_mb << 20
    make_pool(folder, rows)
    ensure_ray(num_cpus=2)
    me = psutil.Process()
    gc.collect()
    base, heap0, py0 = _private(me.memory_info()), malloc_heap(), pymalloc_arenas()
    watch, steps = WorkerPeak(), {}

    def mb(now: int, then: int) -> float:
        return round((now - then) / 2**20, 1)

    def mark(step: str) -> None:
        gc.collect()
        (used, free, mapped), (arenas, objects) = malloc_heap(), pymalloc_arenas()
        steps[step] = {"now_mb": mb(_private(me.memory_info()), base),
                       "peak_mb": mb(watch.driver_private, base),
                       "malloc_used_mb": mb(used, heap0[0]), "malloc_free_mb": mb(free, heap0[1]),
                       "malloc_mapped_mb": mb(mapped, heap0[2]),
                       "pymalloc_arenas_mb": mb(arenas, py0[0]),
                       "pymalloc_objects_mb": mb(objects, py0[1])}

    blocks, read_tasks = ingest_steps(folder, folder.parent / f"rejected-{rows}-{block_mb}.jsonl",
                                      sort_rows, mark)
    watch.stop.set()
    ray.shutdown()
    return {"rows": rows, "block_mb": block_mb, "sort_rows": sort_rows, "blocks": blocks,
            "read_tasks": read_tasks, "steps": steps}


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
