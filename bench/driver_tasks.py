"""The driver's memory against the number of Ray tasks it has run, rows aside: why the pool
ingest's driver still grows a little with the pool (bench/pool_scale.py).

One fresh process with its own local Ray instance runs the same small Ray Data pipeline
(`range` -> `map_batches`, one task per block, streamed and dropped) again and again and
prints, after each pass, the driver's private memory (RSS minus shared pages) over its value
before the first pass, and the same after `malloc_trim` (what glibc then gives back). The
rows per task are tiny, so any growth is Ray's bookkeeping per task, not data. The Python
heap is printed too (tracemalloc, started after the warm-up): if it stays flat, the growth
is in Ray's native core worker or the allocator.

    python bench/driver_tasks.py [--tasks 1000] [--passes 16]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000, help="tasks (blocks) per pass")
    ap.add_argument("--passes", type=int, default=16)
    args = ap.parse_args()
    from instructmix.runtime import prepare

    prepare()
    import psutil
    import ray.data

    from instructmix.cluster import ensure_ray

    ensure_ray(num_cpus=2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    me, libc = psutil.Process(), ctypes.CDLL("libc.so.6")

    def private() -> float:
        mem = me.memory_info()
        return (mem.rss - mem.shared) / 2**20

    ray.data.range(1000, override_num_blocks=2).materialize()  # Ray Data's one-off start-up
    gc.collect()
    tracemalloc.start()
    base, heap0, t0 = private(), tracemalloc.get_traced_memory()[0], time.perf_counter()
    for k in range(args.passes):
        ds = ray.data.range(args.tasks * 100, override_num_blocks=args.tasks).map_batches(
            _same, batch_format="numpy")
        for _ in ds.iter_batches(batch_size=None):
            pass
        del ds
        gc.collect()
        now = private()
        libc.malloc_trim(0)
        print(json.dumps({"tasks_run": (k + 1) * args.tasks,
                          "driver_private_growth_mb": round(now - base, 1),
                          "after_malloc_trim_mb": round(private() - base, 1),
                          "python_heap_growth_mb": round(
                              (tracemalloc.get_traced_memory()[0] - heap0) / 2**20, 2),
                          "seconds": round(time.perf_counter() - t0)}), flush=True)


def _same(batch: dict) -> dict:
    return batch


if __name__ == "__main__":
    main()
