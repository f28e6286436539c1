"""The report stage: `REPORT.json` (everything the report shows, strict JSON) and a
self-contained `REPORT.html` (one file: inline SVG figures, no script, no link).

Reads every input through the run layout (`instructmix.report.inputs`); a missing input
makes its section say "not available" (or "not run" for an optional stage), an unreadable
one is listed under "Problems" at the top of the page and logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from instructmix.config import RunConfig
from instructmix.layout import REPORT, RunLayout
from instructmix.report.augment import augment_section
from instructmix.report.blocks import problem, section
from instructmix.report.compare import compare_section
from instructmix.report.evaluation import depth_section, eval_section
from instructmix.report.inputs import RunData, read_run
from instructmix.report.mix import dag_section, gamma_section, mixture_section
from instructmix.report.overview import config_section, headline, stage_seconds, timings_section
from instructmix.report.page import render_page
from instructmix.report.pool import ground_truth_section, pool_section
from instructmix.report.raise_section import TITLE as RAISE_TITLE
from instructmix.report.raise_section import raise_json, raise_section
from instructmix.report.training import selection_section, training_section

log = logging.getLogger("instructmix")


def _guarded(data: RunData, title: str, build: Callable[[], dict | None]) -> dict | None:
    """A section, or (when its input has an unexpected shape) a section naming the problem:
    one odd input does not take the whole report down."""
    try:
        return build()
    except Exception as e:  # noqa: BLE001 - shown on the page and logged with its traceback
        msg = f"section {title} could not be drawn: {type(e).__name__}: {e}"
        log.warning("report: %s", msg, exc_info=True)
        data.problems.append(msg)
        return section(title, [problem(msg)])


def build_sections(data: RunData, cfg: RunConfig) -> list[dict]:
    strategy, seed = cfg.select.strategy, cfg.seed
    history = data.history or []
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    builders: list[tuple[str, Callable[[], dict | None]]] = [
        ("Baselines at equal steps (compare)",
         lambda: compare_section(data, last.get("tokens"))),
        ("Evaluation of the final run", lambda: eval_section(data, strategy, seed)),
        ("By sequential depth", lambda: depth_section(data)),
        ("Augmentation", lambda: augment_section(data)),
        ("Interaction matrix Γ", lambda: gamma_section(data)),
        ("Dependency DAG", lambda: dag_section(data)),
        ("Mixture", lambda: mixture_section(data)),
        (RAISE_TITLE, lambda: raise_section(data, strategy)),
        ("Training (final run)", lambda: training_section(data)),
        (f"Selection ({strategy})", lambda: selection_section(data, strategy)),
        ("Data pool", lambda: pool_section(data)),
        ("Stage timings", lambda: timings_section(data)),
        ("Planted ground truth (testbed)", lambda: ground_truth_section(data)),
        ("Config", lambda: config_section(cfg.model_dump(mode="json"))),
    ]
    sections = [_guarded(data, title, build) for title, build in builders]
    return [s for s in sections if s is not None]


def report_json(cfg: RunConfig, data: RunData, head: dict, generated_at: str) -> dict:
    strategy = cfg.select.strategy
    select, train = data.dones.get("select") or {}, data.dones.get("train") or {}
    return {
        "config": cfg.model_dump(mode="json"),
        "headline": head,
        "pool": data.stats,
        "selection": {"strategy": strategy, "summary": select.get("summary"),
                      "seconds": select.get("seconds")},
        "training": {"summary": train.get("summary"), "history": data.history},
        "eval": {"strategy": strategy, "results": data.results},
        "stages": stage_seconds(data),
        "skipped": data.skipped,
        "ground_truth": data.ground_truth,
        "probes": {"interactions": data.interactions, "dependencies": data.dependencies,
                   "cost": data.cost},
        "mixture": data.mixture,
        "compare": data.compare,
        "augment": data.augment,
        "policy": raise_json(data),
        "missing": data.missing,
        "problems": data.problems,
        "generated_at": generated_at,
    }


def run_report(cfg: RunConfig, layout: RunLayout) -> dict:
    """Write the report of the run `layout` (opened for the report stage) holds."""
    data = read_run(layout)
    strategy = cfg.select.strategy
    head = headline(data, strategy, cfg.seed)
    sections = build_sections(data, cfg)
    generated_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    json_path = layout.write_json(REPORT.json, report_json(cfg, data, head, generated_at))
    html_path = layout.write_text(REPORT.html, render_page(
        run_dir=layout.location, run_name=layout.root.name, generated_at=generated_at,
        strategy=strategy, headline=head["lines"], problems=data.problems,
        sections=sections))
    best = head["best"]
    return {"report_json": str(json_path), "report_html": str(html_path),
            "strategy": strategy, "macro_exact_match": head["final"]["macro_exact_match"],
            "best_arm": best["arm"] if best else None, "missing": len(data.missing),
            "problems": len(data.problems)}
