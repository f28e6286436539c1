"""SIT and Tree-Instruct on NIv2 rows with Qwen2.5-Coder-1.5B-Instruct on llama.cpp
(`make mentor-model` first): serves the GGUF on the config's base_url port, runs
`instructmix run CONFIG --stop-after augment` once per kind (own run_dir each) and prints
items made, rejects by reason, the judge-vs-rule table and the wall time.

    python scripts/mentor_augment.py [--kinds sit tree] [--set KEY=VALUE ...]

Estimate (configs/niv2_mentor.yaml, 1 slot, 2 threads): per row and kind about 1,000
prompt tokens (mode / rewrite / respond / judge prompts of 150-450 tokens) and 350
generated tokens (rewrite ~120, response up to 256, short replies 8): ~45 s at 15
generated and ~50 prompt tokens/s, so 8 rows x 2 kinds ~12 min plus ~1 min of pool/model
stages per kind.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import yaml

from instructmix.generation.serve import start_server

MODEL = "models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def _print_stats(kind: str, run_dir: Path, seconds: float) -> None:
    stats_file = run_dir / "augment" / "stats.json"
    if not stats_file.is_file():
        print(f"\n## {kind}: no stats ({stats_file} missing)")
        return
    s = json.loads(stats_file.read_text())
    done = run_dir / "augment" / "_DONE.json"
    stage = f", augment stage {json.loads(done.read_text())['seconds']} s" if (
        done.is_file()) else ""
    print(f"\n## {kind} ({run_dir}): {seconds:.0f} s wall{stage}")
    print(f"rows {s['rows_in']}, items made {s['items']}, rejected {s['rejected']}, "
          f"kept after token matching {s['matched_items']}")
    for reason, n in sorted(s["rejected_by_reason"].items(), key=lambda x: -x[1]):
        print(f"  reject x{n}: {reason}")
    judge = s.get("judge_vs_rule")
    if judge:
        print(f"judge vs rule over {judge['rewrites']} rewrites ({judge['judged']} judged, "
              f"{judge['judge_unusable']} unusable replies):")
        for cell, n in judge["table"].items():
            print(f"  {cell}: {n}")
        print("  judge yes-rate {judge_yes_rate}, rule yes-rate {rule_yes_rate}, "
              "agreement {agreement}".format(**judge))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/niv2_mentor.yaml")
    p.add_argument("--model", default=MODEL)
    p.add_argument("--kinds", nargs="+", default=["sit", "tree"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    url = urlparse(cfg["augment"]["generator"]["base_url"])
    base_dir = cfg["run_dir"].removesuffix("_sit")
    t0 = time.monotonic()
    with start_server(args.model, url.hostname, url.port, ctx_size=4096,
                      threads=args.threads) as server:
        print(f"llama.cpp serving {args.model} at {server.base_url} "
              f"({time.monotonic() - t0:.0f} s to load)", flush=True)
        done = []
        for kind in args.kinds:
            run_dir = Path(f"{base_dir}_{kind}")
            cmd = [sys.executable, "-m", "instructmix.cli", "run", args.config,
                   "--stop-after", "augment", "--set", f"augment.train_on={kind}",
                   "--set", f"run_dir={run_dir}", *[f"--set={s}" for s in args.set]]
            print("$ " + " ".join(cmd[2:]), flush=True)
            t = time.monotonic()
            rc = subprocess.run(cmd).returncode
            done.append((kind, run_dir, time.monotonic() - t, rc))
    for kind, run_dir, seconds, rc in done:
        _print_stats(kind + ("" if rc == 0 else f" (exit {rc})"), run_dir, seconds)
    print(f"\ntotal wall time {time.monotonic() - t0:.0f} s")
    return max(rc for *_, rc in done)


if __name__ == "__main__":
    sys.exit(main())
