"""Beyond IID on the testbed, every figure of its RESULTS entry from one command:

    .venv/bin/python scripts/beyond_iid_proof.py [--runs runs/beyond_iid_proof]
        [--main RUN_DIR]   # a finished run of configs/beyond_iid.yaml to use as step 1

1. `instructmix run configs/beyond_iid.yaml`: probes on the target model (3 probe seeds,
   order probes for the DAG), the MILP mixture, and iid, proportional, regmix, milp and
   milp+curriculum at the same budget (seeds 0, 1, 2);
2. sample efficiency: the milp arm at 25% and 50% of the budget (same probes), against iid
   at 100%;
3. a proxy model for the probes (2 layers x 64 wide against the target's 3 x 128) and 3
   rounds of probing and solving (DAG from Γ's asymmetry: its milp arm needs no DAG): how
   its round-1 Γ agrees with the target's, what the probes cost against the final run, and
   its milp arm against iid (same seeds, pool and eval set as step 1, whose iid cells it is
   paired with).
Then prints markdown with the date and commit: planted edges, sign recovery, paired
differences with 95% t-intervals, the curriculum against none, probe cost ratios, the
sample-efficiency curve, the proxy's agreement and the rounds.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from proof import PAIRED_HEAD, commit, compare_only, fork, paired_rows, results, run

from instructmix.config.loading import load_config
from instructmix.experiments.table import paired_differences
from instructmix.probes.agreement import gamma_agreement

CONFIG = "configs/beyond_iid.yaml"
PROXY = ("probes.model.n_layer=2", "probes.model.n_embd=64", "probes.model.n_head=4")


def read(run_dir: Path, stage: str, name: str):
    return json.loads((run_dir / stage / name).read_text())


def dag_lines(run_dir: Path, label: str) -> list[str]:
    deps = read(run_dir, "probe", "dependencies.json")
    planted = deps.get("planted_edges") or []
    found = [f"{e['base']} → {e['dependent']}: {'found' if e['found'] else 'missed'}"
             for e in planted]
    edges = {(e["base"], e["dependent"]) for e in deps["edges"]}
    unplanted = sorted(edges - {(e["base"], e["dependent"]) for e in planted})
    return [f"- {label} ({deps.get('estimator')} estimator): {'; '.join(found)}; "
            f"{len(unplanted)} unplanted edge(s) {unplanted or ''}"]


def recovery_lines(run_dir: Path, label: str) -> list[str]:
    inter = read(run_dir, "probe", "interactions.json")
    out = []
    for key, rule in (("sign_recovery", "sign of γ; a planted 0 needs a bounded interval "
                       "containing 0"), ("sign_recovery_strict", "interval excludes 0")):
        r = inter[key]
        out.append(f"- {label}, {rule}: {r['recovered']} of {r['n']} planted entries "
                   f"recovered; {r['unidentified']} of them in unidentified rows (reported "
                   "apart, never counted recovered)")
    return out


def cost_line(run_dir: Path, label: str, final_tokens: float, target_params: int) -> str:
    cost = read(run_dir, "probe", "cost.json")
    if "probe_model_parameters" not in cost:
        raise SystemExit(f"{run_dir}/probe/cost.json has no probe_model_parameters: its probe "
                         "stage predates proxy probes; re-run it")
    tokens = cost["probe_train_tokens"] / final_tokens
    compute = tokens * cost["probe_model_parameters"] / target_params
    return (f"- {label}: {cost['probe_trials']} probes + {cost['warm_start_trials']} warm "
            f"starts + {cost.get('round_trials', 0)} later-round probes + "
            f"{cost['order_trials']} order probes, {cost['probe_train_tokens']:,} tokens on a "
            f"{cost['probe_model_parameters']:,}-parameter model = {tokens:.2f}x the final "
            f"target run's tokens (iid arm, mean over seeds: {final_tokens:,.0f}), compute "
            f"(tokens x parameters) "
            f"{compute:.3f}x; {cost['probe_trial_seconds']:.0f} s of trial time")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/beyond_iid_proof")
    ap.add_argument("--main", help="a finished run of the config to use as step 1 (its "
                    "compare results are read, not re-run)")
    args = ap.parse_args()
    root = Path(args.runs).resolve()
    if args.main:
        main_run = Path(args.main).resolve()
        cells = list(results(main_run)["cells"])
    else:
        main_run = root / "main"
        cells = list(run(CONFIG, main_run)["cells"])
    budget = load_config(CONFIG).select.budget
    for share in (25, 50):
        res = compare_only(CONFIG, fork(main_run, root / f"budget{share}",
                                        ("pool", "model", "probe")),
                           f"select.budget={budget * share // 100}", "compare.strategies=[milp]")
        cells += [dict(c, strategy=f"milp@{share}%") for c in res["cells"]]
    proxy_run = fork(main_run, root / "proxy_rounds", ("pool",))
    # the milp arm needs no DAG: the proxy run skips the order probes (asymmetry estimator)
    res = compare_only(CONFIG, proxy_run, *PROXY, "select.rounds=3",
                       "probes.dependencies=asymmetry", "compare.strategies=[milp]")
    cells += [dict(c, strategy="milp (proxy, rounds)") for c in res["cells"]]

    iid = [c for c in cells if c["strategy"] == "iid"]
    final_tokens = sum(c["train_tokens"] for c in iid) / len(iid)
    target_params = read(main_run, "model", "model.json")["parameters"]
    rounds = read(proxy_run, "probe", "rounds.json")["rounds"]
    agree = gamma_agreement(read(main_run, "probe", "interactions.json"),
                            dict(rounds[0], categories=sorted(rounds[0]["counts"])))
    out = [f"Measured {datetime.date.today()} at commit {commit()} with "
           f"`python scripts/beyond_iid_proof.py` ({root}; step 1: {main_run}).", "",
           "Planted prerequisite edges (probe seeds 0, 1, 2):",
           *dag_lines(main_run, "target probes"), *dag_lines(proxy_run, "proxy, 3 rounds"), "",
           "Sign recovery of the planted interactions:",
           *recovery_lines(main_run, "target probes"), "",
           "Paired differences per seed (0, 1, 2), macro score, 95% t-interval:", "",
           *PAIRED_HEAD,
           *paired_rows(cells, "iid", ["proportional", "regmix", "milp", "milp+curriculum",
                                       "milp (proxy, rounds)"], "{arm} − iid"),
           *paired_rows(cells, "milp", ["milp+curriculum"], "{arm} − milp"),
           "", "Sample efficiency: milp at a share of the budget against iid at all of it:",
           "", *PAIRED_HEAD,
           *paired_rows(cells, "iid", ["milp@25%", "milp@50%", "milp"], "{arm} − iid@100%",
                        ("exact_match",)), ""]
    matched = [a for a in ("milp@25%", "milp@50%", "milp")
               if not paired_differences([c for c in cells if c["strategy"] in (a, "iid")],
                                         "iid")[a]["loses"]]
    out += [f"Smallest share not shown worse than iid at 100%: "
            f"{matched[0] if matched else 'none'} (\"not worse\" = the interval does not "
            "exclude 0 from below; it does not show equality).", "",
            "Probe cost against the final run:",
            cost_line(main_run, "target probes", final_tokens, target_params),
            cost_line(proxy_run, "proxy probes, 3 rounds", final_tokens, target_params), "",
            f"Proxy round-1 Γ against the target's: {agree['entries']} off-diagonal entries "
            f"identified by both ({agree['unidentified']} not); sign agreement "
            f"{agree['sign_agreement']}; both intervals excluding 0: "
            f"{agree['strict_entries']} entries, agreement {agree['strict_agreement']}; "
            f"Spearman rank correlation {agree['spearman']}.", "",
            "| round | objective at centre | after the move | gain | moved | mixture |",
            "|---|---|---|---|---|---|"]
    out += [f"| {r['round']} | {r['objective_at_centre']:.3f} | {r['objective']:.3f} | "
            f"{r['gain']:+.3f} | {r['moved_share']:.3f} | "
            + ", ".join(f"{c} {n}" for c, n in r["counts"].items()) + " |" for r in rounds]
    print("\n".join(out))
    (root / "table.md").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
