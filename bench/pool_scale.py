"""Pool ingest at 10k, 100k and 1M rows: rows/s and peak memory of the driver and of the Ray
workers, each size in a fresh process with its own local Ray instance.

Measured: the ingest half of the pool stage (`data.ingest`: count lines, read and validate
in byte ranges, hash-partitioned dedupe, per-file counts, rejected rows streamed to a JSONL
file, accepted rows counted per category). Embedding is left out: it costs the same per row
at every pool size and is measured by bench/pool_throughput.py (and sized per GPU in
docs/SCALE.md). The pool is a synthetic Alpaca set in 3 files (50 / 30 / 20 % of the rows)
with blank lines, malformed rows and duplicate ids.

Object store: the largest use of Ray's object store on the node (`ray memory --stats-only`,
sampled every second). Driver memory: peak RSS of the driver process minus its RSS once Ray
is up (`growth`; RSS counts the object-store pages the driver maps), and the same for its
private memory (sampled every 0.2 s: `private_growth`);
worker memory: the largest RSS any Ray worker reached (sampled every 0.2 s), and the largest
private part of it (RSS minus shared pages: the object-store pages a worker maps are shared
memory, counted once in the object store, not per worker). The ratios printed are the
driver's growths at the largest size over those at the smallest; sizes run in
increasing, then decreasing order when --repeats is 2 or more.

    python bench/pool_scale.py [--rows 10000 100000 1000000] [--repeats 2] [--chunk-mb 32]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
SHARES = (0.5, 0.3, 0.2)


def make_pool(folder: Path, rows: int) -> list[Path]:
    """3 Alpaca JSONL files; every 500th line blank, every 400th malformed, every 100th row
    repeats an earlier id."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, k = [], 0
    rng = random.Random(rows)
    words = ["list", "explain", "sum", "translate", "count", "sort", "name", "compare"]
    for f, share in enumerate(SHARES):
        path = folder / f"part{f}.jsonl"
        paths.append(path)
        if path.is_file():
            k += int(rows * share)
            continue
        with open(path, "w") as out:
            for _ in range(int(rows * share)):
                if k % 500 == 499:
                    out.write("\n")
                elif k % 400 == 399:
                    out.write('{"id": "bad", "instruction": \n')
                else:
                    rid = f"r{k - 50}" if k % 100 == 99 else f"r{k}"
                    task = " ".join(rng.choice(words) for _ in range(rng.randint(4, 30)))
                    out.write(json.dumps({"id": rid, "instruction": f"{task} ({k})",
                                          "input": "", "output": f"answer {k}",
                                          "category": words[k % len(words)]}) + "\n")
                k += 1
    return paths


class WorkerPeak:
    """Largest RSS, and largest private memory (RSS minus shared pages), of each kind of Ray
    worker (its process title, `ray::TaskName`) while running; and the driver's own largest
    private memory."""

    def __init__(self):
        import psutil

        self.me, self.stop = psutil.Process(), threading.Event()
        self.peaks, self.private = {}, {}
        self.driver_private = self.store_mb = 0
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self):
        import psutil
        from ray._private.internal_api import memory_summary  # `ray memory --stats-only`

        for tick in itertools.count():
            if self.stop.is_set():
                return
            if tick % 5 == 0:  # once a second: the object store's use, spilled bytes apart
                used = re.search(r"Plasma memory usage (\d+) MiB", memory_summary(
                    stats_only=True))
                self.store_mb = max(self.store_mb, int(used.group(1)) if used else 0)
            self.driver_private = max(self.driver_private, _private(self.me.memory_info()))
            for p in self.me.children(recursive=True):
                try:
                    title = " ".join(p.cmdline())
                    if title.startswith("ray::") and "IDLE" not in title:
                        name = title.split()[0][5:60]
                        mem = p.memory_info()
                        self.peaks[name] = max(self.peaks.get(name, 0), mem.rss)
                        self.private[name] = max(self.private.get(name, 0), _private(mem))
                except psutil.Error:
                    pass
            time.sleep(0.2)


def _private(mem) -> int:
    """RSS minus shared pages (psutil's memory_info on Linux)."""
    return mem.rss - mem.shared


def _largest(peaks: dict) -> dict:
    """{task: MB} of the 3 largest."""
    return {k: round(v / 2**20) for k, v in sorted(peaks.items(), key=lambda kv: -kv[1])[:3]}


def child(rows: int, folder: Path, chunk_bytes: int) -> dict:
    """One measurement, in this (fresh) process."""
    from instructmix.runtime import prepare

    prepare()
    import ray

    from instructmix.cluster import ensure_ray
    from instructmix.config import PoolConfig, SourceConfig
    from instructmix.data.ingest import ingest, merged_counts, rejected_lines
    from instructmix.data.read import source_items

    make_pool(folder, rows)
    ensure_ray(num_cpus=2)
    import psutil

    mem = psutil.Process().memory_info()
    base, base_private = mem.rss, _private(mem)
    watch = WorkerPeak()
    t0 = time.perf_counter()
    items = source_items([SourceConfig(path=str(folder))], 0)  # the 3 pool files only
    ing = ingest(items, max_chars=20000, chunk_bytes=chunk_bytes, block_rows=4096,
                 dedupe_rows=PoolConfig().dedupe_rows)
    n_rejected = 0
    with open(folder.parent / f"rejected-{rows}.jsonl", "wb") as out:
        for chunk in rejected_lines(ing):
            out.write(chunk)
            n_rejected += chunk.count(b"\n")
    per_category = merged_counts(ing.rows("accepted"), ["category"])
    seconds = time.perf_counter() - t0
    watch.stop.set()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    lines = sum(f["lines"] for f in ing.per_file.values())
    ok = all(f["adds_up"] for f in ing.per_file.values()) and (
        ing.read == ing.accepted + n_rejected == sum(per_category.values()) + n_rejected)
    ray.shutdown()
    return {"rows": rows, "lines": lines, "read": ing.read, "accepted": ing.accepted,
            "rejected": n_rejected, "counts_add_up": ok, "seconds": round(seconds, 1),
            "rows_per_s": round(ing.read / seconds), "driver_base_mb": round(base / 2**20),
            "driver_peak_mb": round(peak / 2**20),
            "driver_growth_mb": round((peak - base) / 2**20),
            "driver_private_growth_mb": round((watch.driver_private - base_private) / 2**20),
            "chunk_mb": chunk_bytes >> 20,
            "object_store_peak_mb": watch.store_mb,
            "worker_rss_mb": _largest(watch.peaks),
            "worker_private_mb": _largest(watch.private)}


def in_fresh_process(script: str, *argv: str) -> dict:
    """The JSON object a child run of `script` prints last; exits with its stderr if it
    failed."""
    out = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True,
                         env=dict(os.environ, RAY_DEDUP_LOGS="0"))
    if out.returncode:
        sys.exit(f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--chunk-mb", type=int, default=32, help="pool.chunk_bytes, in MiB")
    ap.add_argument("--data", default="/tmp/instructmix-pool-scale")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.data) / str(args.child),
                               args.chunk_mb << 20)))
        return
    results = []
    for rep in range(args.repeats):
        for rows in (args.rows if rep % 2 == 0 else args.rows[::-1]):
            res = dict(in_fresh_process(__file__, "--child", str(rows), "--data", args.data,
                                        "--chunk-mb", str(args.chunk_mb)), repeat=rep)
            results.append(res)
            print(json.dumps(res), flush=True)
    small, large = min(args.rows), max(args.rows)
    summary = {}
    for key in ("driver_growth_mb", "driver_private_growth_mb"):
        growth = {n: [r[key] for r in results if r["rows"] == n] for n in args.rows}
        summary[f"{key}_by_rows"] = growth
        summary[f"ratio_{key}_largest_over_smallest"] = round(
            max(growth[large]) / max(1, max(growth[small])), 2)
    print(json.dumps(dict(summary, rows_ratio=large // small)))


if __name__ == "__main__":
    main()
