"""RAISE on the testbed, every figure of the README's RAISE table from one command:

    .venv/bin/python scripts/raise_proof.py [--runs runs/raise_proof]

1. `instructmix run configs/raise.yaml`: the policy, the target run, and every arm at the
   same optimizer steps (3 seeds): full (all steps), iid (a random subset), ifd, selfpaced,
   milp and raise;
2. the ablation: the same run's pool/model/probe with `raise.stage_features=false` (a new
   policy without the training-stage features), its raise arm only;
3. sample efficiency: raise and iid at budgets buying 50% and 100% of the full run's steps
   (the trained policy of step 1 reused).
Then prints markdown: paired differences per seed with 95% t-intervals (raise − iid,
raise − full, raise − ablation), what the policy picked by category over the run, and the
policy's training cost against one full-data run. The date and commit are printed with it.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
from proof import PAIRED_HEAD, commit, fork, paired_rows, run

CONFIG = "configs/raise.yaml"


def picked_shares(cells: list[dict]) -> list[str]:
    """Share of each category in the raise arm's batches per quarter of the run."""
    raise_cells = [c for c in cells if c["strategy"] == "raise" and c.get("picked")]
    cats = sorted({k for c in raise_cells for w in c["picked"] for k in w["counts"]})
    rows = ["| quarter | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
    for q in range(len(raise_cells[0]["picked"]) if raise_cells else 0):
        totals = {c: sum(cell["picked"][q]["counts"].get(c, 0) for cell in raise_cells)
                  for c in cats}
        n = sum(totals.values())
        rows.append(f"| {q + 1} | " + " | ".join(f"{totals[c] / n:.2f}" for c in cats) + " |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/raise_proof")
    root = Path(ap.parse_args().runs).resolve()
    main_run = root / "main"
    base = run(CONFIG, main_run)
    cells = list(base["cells"])
    # every fork keeps a milp arm: the probe stage (Γ, and the DAG tiers in RAISE's state)
    # is then the main run's, not re-run without probes
    ablation = run(CONFIG, fork(main_run, root / "no_stage", ("pool", "model", "probe")),
                   "raise.stage_features=false", "compare.strategies=[raise,milp]")
    cells += [dict(c, strategy="raise-no-stage") for c in ablation["cells"]
              if c["strategy"] == "raise"]
    full = [c for c in cells if c["strategy"] == "full"]
    full_steps, usable = full[0]["steps"], sum(full[0]["counts"].values())
    for share in (50, 100):
        budget = usable * share // 100  # rows whose epochs take share% of the full steps
        forked = fork(main_run, root / f"steps{share}", ("pool", "model", "probe", "policy"))
        res = run(CONFIG, forked, f"select.budget={budget}",
                  "compare.strategies=[iid,raise,milp]")
        cells += [dict(c, strategy=f"{c['strategy']}@{share}%") for c in res["cells"]
                  if c["strategy"] != "milp"]
    raise_steps = next(c["steps"] for c in cells if c["strategy"] == "raise")
    cost = json.loads((main_run / "policy" / "cost.json").read_text())
    out = [f"Measured {datetime.date.today()} at commit {commit()} with "
           f"`python scripts/raise_proof.py` ({root}).", "",
           f"raise = {raise_steps} steps = {raise_steps / full_steps:.1%} of the full run's "
           f"{full_steps}.", "", *PAIRED_HEAD]
    arms = ["ifd", "selfpaced", "milp", "raise", "full"]
    out += paired_rows(cells, "iid", arms, "{arm} − iid (same steps; full: all steps)")
    steps = [f"raise@{s}%" for s in (50, 100)] + ["raise"]
    out += paired_rows(cells, "full", steps, "{arm} − full")
    for share in (50, 100):
        out += paired_rows(cells, f"iid@{share}%", [f"raise@{share}%"], "{arm} − " +
                           f"iid@{share}%")
    out += paired_rows(cells, "raise", ["raise-no-stage"], "{arm} − raise")
    out += ["", "Share of each category in RAISE's batches, by quarter of the run "
            "(compare arm, 3 seeds pooled):", "", *picked_shares(base["cells"]), ""]
    full_tokens = float(np.mean([c["train_tokens"] for c in full]))
    full_seconds = float(np.mean([c["seconds"] for c in full]))
    out += [f"Policy training: {cost['episodes']} episodes, {cost['episode_steps']} steps, "
            f"{cost['episode_train_tokens']:,} tokens = "
            f"{cost['episode_train_tokens'] / full_tokens:.2f}x the tokens of one full-data "
            f"run ({full_tokens:,.0f}); {cost['episode_seconds']:.0f} s of episode time = "
            f"{cost['episode_seconds'] / full_seconds:.2f}x one full-data trial "
            f"({full_seconds:.0f} s)."]
    print("\n".join(out))
    (root / "table.md").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
