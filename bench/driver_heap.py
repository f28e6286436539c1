"""The driver's glibc heap after pool ingest, by allocation site, under heaptrack
(`apt install heaptrack`).

`run ROWS` runs bench/driver_phases.py's steps (count, ingest, rejected rows, counts per
category, the outcome dropped) on the same synthetic pool, then exits at once: heaptrack's
"leaked" memory is then what the driver still holds after the stage, each allocation with
its call site. Ray's own processes are not traced (LD_PRELOAD is taken out of the
environment they inherit). `compare A B` prints the sites whose memory in use grew most
from heaptrack file A to B (e.g. 10k rows against 1M).

    heaptrack -o /tmp/heap10k python bench/driver_heap.py run 10000
    heaptrack -o /tmp/heap1m python bench/driver_heap.py run 1000000
    python bench/driver_heap.py compare /tmp/heap10k.zst /tmp/heap1m.zst
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pool_scale adds the repository

from driver_phases import ingest_steps  # noqa: E402
from pool_scale import _private, make_pool  # noqa: E402

UNITS = {"": 1, "B": 1, "K": 1e3, "M": 1e6, "G": 1e9}


def run(rows: int, folder: Path) -> None:
    os.environ.pop("LD_PRELOAD", None)  # Ray's processes are not traced
    from instructmix.runtime import prepare

    prepare()
    import psutil

    from instructmix.cluster import ensure_ray
    from instructmix.data.ingest import REJECTED_SORT_ROWS

    make_pool(folder, rows)
    ensure_ray(num_cpus=2)
    me, base = psutil.Process(), {}

    def mark(step: str) -> None:
        gc.collect()
        base.setdefault("count", _private(me.memory_info()))

    ingest_steps(folder, folder.parent / f"rejected-{rows}.jsonl", REJECTED_SORT_ROWS, mark)
    grown = (_private(me.memory_info()) - base["count"]) / 2**20
    print(f"private memory since the count step: {grown:.1f} MB", flush=True)
    os._exit(0)  # heaptrack records what is in use now, before Ray shuts down


def in_use_by_site(path: str) -> dict[str, tuple[float, int]]:
    """{first frame of an allocation site: (bytes still in use, allocations)}."""
    text = subprocess.run(["heaptrack_print", "-f", path, "--print-leaks", "1",
                           "--print-peaks", "0", "--print-allocators", "0",
                           "--print-temporary", "0", "-n", "1000", "-s", "0"],
                          capture_output=True, text=True, check=True).stdout
    sites: dict[str, tuple[float, int]] = {}
    for entry in text.split("MEMORY LEAKS", 1)[1].strip().split("\n\n"):
        m = re.match(r"([\d.]+)([KMGB]?) leaked over (\d+) calls from:?\n(.*)", entry.strip(),
                     re.S)
        if m:
            site = m.group(4).splitlines()[0].strip()
            if site.startswith("0x"):  # no symbol: the address moves from run to run
                site = "(no symbol)"
            size, calls = sites.get(site, (0.0, 0))
            sites[site] = (size + float(m.group(1)) * UNITS[m.group(2)],
                           calls + int(m.group(3)))
    return sites


def compare(a: str, b: str, top: int) -> None:
    before, after = in_use_by_site(a), in_use_by_site(b)
    rows = sorted(((after.get(k, (0, 0))[0] - before.get(k, (0, 0))[0], k)
                   for k in set(before) | set(after)), reverse=True)
    total = sum(d for d, _ in rows)
    print(f"in use: {sum(v for v, _ in before.values()) / 1e6:.2f} MB -> "
          f"{sum(v for v, _ in after.values()) / 1e6:.2f} MB ({total / 1e6:+.2f})")
    for diff, site in rows[:top]:
        (was, n0), (now, n1) = before.get(site, (0, 0)), after.get(site, (0, 0))
        print(f"{diff / 1e6:+7.2f} MB  {was / 1e6:6.2f} -> {now / 1e6:6.2f} MB, "
              f"{n0} -> {n1} allocations  {site[:110]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("rows", type=int)
    r.add_argument("--data", default="/tmp/instructmix-pool-scale")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    if args.command == "run":
        run(args.rows, Path(args.data) / str(args.rows))
    else:
        compare(args.a, args.b, args.top)


if __name__ == "__main__":
    main()
