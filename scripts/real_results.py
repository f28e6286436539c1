"""The figures of a finished `instructmix run configs/real.yaml`, as markdown for
docs/RESULTS.md: time by stage, pool and decontamination counts, what the k-means
categories hold, Γ, the mixture, the compare table (paired differences over seeds), and
the final model against the untrained start model on every eval category (the same
scoring code; one greedy run each, so no interval).

    python scripts/real_results.py [--run runs/real]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from instructmix.evaluation.scoring import score_rows
from instructmix.evaluation.summary import summarise


def _json(path: Path):
    return json.loads(path.read_text())


def stages(run: Path) -> list[str]:
    out = ["| stage | seconds |", "|---|---|"]
    total = 0.0
    for stage in ("pool", "model", "probe", "policy", "select", "augment", "train", "eval",
                  "compare", "report"):
        done = run / stage / "_DONE.json"
        if done.is_file():
            s = _json(done)["seconds"]
            total += s
            out.append(f"| {stage} | {s:.0f} |")
    return out + [f"| all stages | {total:.0f} |"]


def pool(run: Path) -> list[str]:
    s = _json(run / "pool" / "stats.json")
    d = s["decontamination"]
    out = [f"Pool: read {s['read']}, accepted {s['accepted']}, rejected {s['rejected']} "
           f"{s['rejected_by_reason']}; eval rows {s['eval']['accepted']} "
           f"{s['eval']['per_category']} (rejected {s['eval']['rejected_by_reason']}).",
           f"Decontamination ({d['ngram']}-grams): {d['pool_rows_rejected']} pool rows "
           f"rejected; eval items too short to check {d['eval_items_too_short']}; per eval "
           "source: " + ", ".join(f"{k} {v['pool_rows_rejected']}"
                                   for k, v in d["per_eval_source"].items()), ""]
    table = pq.read_table(run / "pool" / "shards", columns=["category", "source"]).to_pylist()
    by = Counter((r["category"], r["source"]) for r in table)
    sources = sorted({r["source"] for r in table})
    out += ["| category | " + " | ".join(sources) + " |", "|---" * (len(sources) + 1) + "|"]
    for cat in sorted({r["category"] for r in table}):
        out.append(f"| {cat} | " + " | ".join(str(by[(cat, s)]) for s in sources) + " |")
    return out


def gamma(run: Path) -> list[str]:
    g = _json(run / "probe" / "interactions.json")
    cats = g["categories"]
    out = [f"Γ ({g['score']}, {g['n_seeds']} seeds, {int(g['ci'] * 100)}% intervals; row i, "
           "column j: effect of j's items on i, in units of i's own):", "",
           "| i \\ j | " + " | ".join(cats) + " |", "|---" * (len(cats) + 1) + "|"]
    for i, ci in enumerate(cats):
        out.append(f"| {ci} | " + " | ".join(
            f"{g['gamma'][i][j]:.2f} [{g['lo'][i][j]:.2f}, {g['hi'][i][j]:.2f}]"
            for j in range(len(cats))) + " |")
    m = _json(run / "select" / "mixture.json")
    return out + ["", f"MILP mixture of {m['selected']} items: {m['counts']} "
                  f"(available {m['available']}; binding {m['binding']})."]


def final_against_start(run: Path) -> list[str]:
    cfg = _json(run / "run_config.json")
    rows = pq.read_table(run / "pool" / "eval.parquet").to_pylist()
    tuned = _json(run / "eval" / "results.json")["per_category"]
    ev, tc = cfg["eval"], cfg["train"]
    start = summarise(score_rows(cfg["model"]["path"], rows, ev["batch_size"],
                                 ev["max_new_tokens"], tc["max_seq_len"]), rows)["per_category"]
    out = ["| eval category | scorer | n | start model | final model (milp) | start loss | "
           "final loss |", "|---|---|---|---|---|---|---|"]

    def num(v):
        return "–" if v is None else f"{v:.3f}"

    def score(c):  # IFEval: prompt-level (instruction-level)
        extra = c.get("instruction_accuracy")
        return num(c["exact_match"]) + (f" ({extra:.3f})" if extra is not None else "")

    for cat, t in tuned.items():
        s = start[cat]
        out.append(f"| {cat} | {t.get('scorer', 'exact')} | {t['n']} | {score(s)} | "
                   f"{score(t)} | {num(s['loss'])} | {num(t['loss'])} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/real")
    run = Path(ap.parse_args().run)
    for block in (stages(run), pool(run), gamma(run),
                  [(run / "compare" / "table.md").read_text()], final_against_start(run)):
        print("\n".join(block), "\n", flush=True)


if __name__ == "__main__":
    main()
