"""What the proof scripts share: running a config, forking a run folder, paired-difference
rows in markdown, and the commit a table was measured at."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from instructmix.experiments.table import paired_differences

BIN = str(Path(sys.executable).with_name("instructmix"))
STAGES_BEFORE_COMPARE = "policy"  # compare reads pool, model, probe, policy (not train)


def instructmix(command: str, config: str, run_dir: Path, *sets: str, stop_after: str | None = None
                ) -> None:
    args = [BIN, command, config, "--set", f"run_dir={run_dir}"]
    for s in sets:
        args += ["--set", s]
    if stop_after:
        args += ["--stop-after", stop_after]
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def run(config: str, run_dir: Path, *sets: str) -> dict:
    """Every stage; the compare stage's results."""
    instructmix("run", config, run_dir, *sets)
    return results(run_dir)


def compare_only(config: str, run_dir: Path, *sets: str) -> dict:
    """The stages the compare stage reads, then compare (no final run): its results."""
    instructmix("run", config, run_dir, *sets, stop_after=STAGES_BEFORE_COMPARE)
    instructmix("compare", config, run_dir, *sets)
    return results(run_dir)


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "compare" / "results.json").read_text())


def fork(src: Path, dst: Path, stages: tuple[str, ...]) -> Path:
    """A new run folder sharing `stages` (finished, same fingerprints) with `src`."""
    if not dst.exists():
        dst.mkdir(parents=True)
        for stage in stages:
            shutil.copytree(src / stage, dst / stage)
    return dst


def macro(cell: dict, metric: str = "exact_match") -> float:
    return float(np.mean([v for v in cell[metric].values() if v is not None]))


def paired_rows(cells: list[dict], baseline: str, arms: list[str], label: str,
                metrics: tuple[str, ...] = ("exact_match", "token_accuracy")) -> list[str]:
    """Markdown rows: each arm minus the baseline, paired by seed, 95% t-interval, verdict."""
    rows = []
    for metric in metrics:
        paired = paired_differences([c for c in cells if c["strategy"] in (*arms, baseline)],
                                    baseline, metric)
        for arm, p in paired.items():
            verdict = "beats" if p["beats"] else "loses to" if p["loses"] else "≈"
            rows.append(f"| {label.format(arm=arm)} | {metric.replace('_', ' ')} | "
                        + ", ".join(f"{d:+.3f}" for d in p["differences"])
                        + f" | {p['mean']:+.3f} | [{p['lo']:+.3f}, {p['hi']:+.3f}] | "
                        f"{verdict} |")
    return rows


PAIRED_HEAD = ["| comparison | metric | per seed | mean | 95% interval | verdict |",
               "|---|---|---|---|---|---|"]


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
