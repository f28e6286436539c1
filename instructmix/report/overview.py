"""The parts of the report about the run as a whole: the headline, stage timings and the
config."""

from __future__ import annotations

from instructmix.report.blocks import details, section, table
from instructmix.report.compare import arms, best_arm
from instructmix.report.fmt import finite, flatten, mean_std, num, prose, seconds, text
from instructmix.report.inputs import STAGES, RunData, seconds_of


def headline(data: RunData, strategy: str, seed: int) -> dict:
    """{"best": the compare table's best arm (or None), "final": the final run's macro
    scores, "lines": the sentences shown at the top of the page}."""
    agg = arms(data)
    best = best_arm(agg)
    lines = []
    if best:
        lines.append(f"Best compare arm: {best['arm']}, {best['label']} "
                     f"{mean_std(agg[best['arm']][best['metric']])} (mean ± std over "
                     f"{num(best['n_seeds'])} seeds: {text(best['seeds'])}), out of "
                     f"{num(len(agg))} arms at equal steps.")
    elif agg:
        lines.append("Compare stage: no arm has a macro score.")
    else:
        lines.append("Compare stage not run: no arms to rank.")
    res = data.results or {}
    final = {k: finite(res.get(k)) for k in ("macro_exact_match", "macro_token_accuracy",
                                             "macro_loss")}
    if data.results is None:
        lines.append(f"Final run ({strategy}, one seed {seed}): no eval results.")
    else:
        lines.append(f"Final run ({strategy}, one seed {seed}, not a mean over seeds): macro "
                     f"exact match {num(final['macro_exact_match'])}, macro token accuracy "
                     f"{num(final['macro_token_accuracy'])}, macro eval loss "
                     f"{num(final['macro_loss'])}.")
    return {"best": best, "final": dict(final, strategy=strategy, seed=seed), "lines": lines}


def stage_seconds(data: RunData) -> dict:
    return {s: seconds_of(data, s) for s in STAGES}


def timings_section(data: RunData) -> dict:
    rows = []
    for s, v in stage_seconds(data).items():
        state = "done" if data.dones.get(s) is not None else "not run"
        if s in data.skipped:
            state = f"made nothing: {prose(data.skipped[s])}"
        rows.append([s, state, seconds(v) if v is not None else "—"])
    return section("Stage timings", [table(
        ["stage", "state", "seconds"], rows,
        caption="seconds = wall-clock time of the stage's last successful run; not run = "
        "the stage has not finished in this run directory.")])


def config_section(config: dict) -> dict:
    return section("Config", [details("every setting of the run (dotted keys)", [
        table(["setting", "value"], flatten(config))])])
