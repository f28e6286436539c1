"""Run report: `report/report.json` and a self-contained `report/report.html`.

Reads the artifacts of the pool, select, train and eval stages. Plots are inline SVG drawn
by the small helpers below (no JS, no external files). A missing artifact skips its section
with a visible "not available: <path>" note instead of failing.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from pathlib import Path

from instructmix.evaluation.depth import level_keys

STAGES = ["pool", "model", "probe", "select", "augment", "train", "eval", "compare"]
EXAMPLES_PER_CATEGORY = 3
CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.cap{color:#555;font-size:.9em}
.na{color:#b00;font-style:italic}pre{background:#f6f6f6;padding:.5em;overflow:auto}
svg{display:block;margin:.5em 0}"""


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def _num(v) -> float | None:
    """A finite float, or None (missing, null, NaN, inf)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (bool, int)):
        return str(v)
    n = _num(v)
    return "n/a" if n is None else f"{n:.{digits}g}" if abs(n) >= 1000 else f"{n:.{digits}f}"


def svg_bars(labels, values, title: str, vmax: float | None = None, digits: int = 3) -> str:
    """Horizontal bar chart; None/NaN values are drawn as "n/a" without a bar."""
    vals = [_num(v) for v in values]
    finite = [v for v in vals if v is not None]
    top = vmax if vmax is not None else max(finite + [0.0]) or 1.0
    left, width, row = 140, 380, 18
    h = 30 + row * max(len(labels), 1) + 10
    parts = [f'<svg width="{left + width + 80}" height="{h}"'
             f' role="img" aria-label="{esc(title)}">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>']
    for k, (lab, v) in enumerate(zip(labels, vals, strict=True)):
        y = 28 + k * row
        parts.append(f'<text x="{left - 6}" y="{y + 12}" font-size="11" text-anchor="end">'
                     f"{esc(lab)}</text>")
        w = 0.0 if v is None else max(0.0, min(v / top, 1.0)) * width
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" '
                     f'fill="#4a7ebb"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 12}" font-size="11">'
                     f"{esc(fmt(v, digits))}</text>")
    parts.append(f'<line x1="{left}" y1="26" x2="{left}" y2="{h - 8}" stroke="#888"/></svg>')
    return "".join(parts)


def svg_lines(xs, ys, title: str, xlabel: str = "step", ylabel: str = "") -> str:
    """Line plot of one series; points with a missing x or y are dropped."""
    pts = [(_num(x), _num(y)) for x, y in zip(xs, ys, strict=True)]
    pts = [(x, y) for x, y in pts if x is not None and y is not None]
    W, H, L, T, B = 560, 220, 60, 26, 30
    out = [f'<svg width="{W}" height="{H}" role="img" '
           f'aria-label="{esc(title)}">',
           f'<text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>']
    if not pts:
        out.append(f'<text x="{L}" y="{H / 2}" font-size="12">no data</text></svg>')
        return "".join(out)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    pw, ph = W - L - 12, H - T - B

    def px(x):
        return L + (x - x0) / (x1 - x0) * pw

    def py(y):
        return T + ph - (y - y0) / (y1 - y0) * ph

    line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
    out += [f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>',
            f'<polyline points="{line}" fill="none" stroke="#c0504d" stroke-width="1.5"/>',
            f'<text x="{L - 4}" y="{T + 10}" font-size="10" text-anchor="end">{fmt(y1)}</text>',
            f'<text x="{L - 4}" y="{T + ph}" font-size="10" text-anchor="end">{fmt(y0)}</text>',
            f'<text x="{L}" y="{H - 14}" font-size="10">{fmt(x0, 0)}</text>',
            f'<text x="{L + pw}" y="{H - 14}" font-size="10" text-anchor="end">{fmt(x1, 0)}'
            "</text>",
            f'<text x="{L + pw / 2}" y="{H - 4}" font-size="11" text-anchor="middle">'
            f"{esc(xlabel)}</text>",
            f'<text x="12" y="{T + ph / 2}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 12 {T + ph / 2})">{esc(ylabel)}</text></svg>']
    return "".join(out)


def table(headers, rows) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def score_table(by_strategy: dict[str, dict], metric: str) -> str:
    """One row per category, one column per strategy: {strategy: eval results} -> table."""
    cats = sorted({c for r in by_strategy.values() for c in r.get("per_category", {})})
    first = next(iter(by_strategy.values()), {}).get("per_category", {})
    rows = [[c, first.get(c, {}).get("n", "")]
            + [fmt(r.get("per_category", {}).get(c, {}).get(metric)) for r in by_strategy.values()]
            for c in cats]
    rows.append(["macro", ""] + [fmt(r.get(f"macro_{metric}")) for r in by_strategy.values()])
    return table(["category", "n", *by_strategy], rows)


def _read_json(path: Path, missing: list[str]):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        missing.append(str(path))
        return None


def _read_jsonl(path: Path, missing: list[str]) -> list[dict] | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        missing.append(str(path))
        return None
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def na(path) -> str:
    return f'<p class="na">not available: {esc(path)}</p>'


def cap(text: str) -> str:
    return f'<p class="cap">{esc(text)}</p>'


def _pool_html(stats, path) -> str:
    if not isinstance(stats, dict):
        return na(path)
    per_cat = stats.get("per_category", {})
    cats = sorted(per_cat)
    ev = stats.get("eval", {}) or {}
    return "".join([
        table(["read", "accepted", "rejected", "blank lines", "counts add up",
               "categories by k-means"],
              [[stats.get("read"), stats.get("accepted"), stats.get("rejected"),
                stats.get("blank_lines"), stats.get("counts_add_up"),
                stats.get("categories_assigned_by_kmeans")]]),
        cap("read = rows read from the sources; accepted = rows kept in the training pool; "
            "rejected = rows dropped (reasons below, every row in pool/rejected.jsonl); blank "
            "lines = empty lines of JSONL files (not rows); counts add up = read == accepted + "
            "rejected; categories by k-means = rows without a category that got a k-means "
            "cluster label."),
        svg_bars(cats, [per_cat[c].get("items") for c in cats], "Pool items per category", None, 0),
        table(["category", "items", "tokens"],
              [[c, per_cat[c].get("items"), per_cat[c].get("tokens")] for c in cats]),
        "<h3>Rejected by reason</h3>",
        table(["reason", "rows"], sorted((stats.get("rejected_by_reason") or {}).items())),
        "<h3>Rows per source</h3>",
        table(["source", "rows"], sorted((stats.get("per_source") or {}).items())),
        "<h3>Held-out eval set</h3>",
        table(["read", "accepted", "rejected"],
              [[ev.get("read"), ev.get("accepted"), ev.get("rejected")]]),
        table(["category", "eval items"], sorted((ev.get("per_category") or {}).items())),
    ])


def _eval_html(by_strategy: dict[str, dict], preds, res_path, pred_path) -> str:
    if not by_strategy:
        return na(res_path)
    parts = [cap("exact match = share of held-out items whose greedy generation equals the "
                 "reference after whitespace normalisation: the row's answer, or its reference "
                 "response when it has none. token accuracy = share of the reference response's "
                 "tokens (and eos) that are the model's argmax, teacher-forced. loss = mean "
                 "per-token cross-entropy of the reference response (lower is better). macro = "
                 "unweighted mean over categories."),
             "<h3>Exact match per category</h3>", score_table(by_strategy, "exact_match"),
             "<h3>Token accuracy per category</h3>", score_table(by_strategy, "token_accuracy"),
             "<h3>Eval loss per category</h3>", score_table(by_strategy, "loss")]
    for name, res in by_strategy.items():
        pc = res.get("per_category", {})
        cats = sorted(pc)
        parts.append(svg_bars(cats, [pc[c].get("exact_match") for c in cats],
                              f"Exact match per category ({name})", vmax=1.0))
        parts.append(svg_bars(cats, [pc[c].get("token_accuracy") for c in cats],
                              f"Token accuracy per category ({name})", vmax=1.0))
        parts.append(svg_bars(cats, [pc[c].get("loss") for c in cats],
                              f"Eval loss per category ({name})"))
    parts.append("<h3>Example predictions</h3>")
    if preds is None:
        parts.append(na(pred_path))
    else:
        seen: dict[str, int] = {}
        rows = []
        for p in preds:
            c = p.get("category")
            if seen.get(c, 0) < EXAMPLES_PER_CATEGORY:
                seen[c] = seen.get(c, 0) + 1
                pred = str(p.get("prediction", ""))
                rows.append([c, p.get("id"), pred[:200] + ("…" if len(pred) > 200 else ""),
                             p.get("correct"), fmt(p.get("loss"))])
        parts.append(table(["category", "id", "prediction", "correct", "loss"], rows))
    return "".join(parts)


def _depth_html(results) -> str | None:
    """Testbed chains by depth, Tree-Instruct rows by complexity and judged SeqEval by depth;
    None when the results have none of them."""
    res = results if isinstance(results, dict) else {}
    depth, cx, seq = res.get("by_depth"), res.get("by_complexity"), res.get("seqeval")
    parts = []
    if depth:
        ds = level_keys(depth)
        parts += [table(["depth", "n", "following rate", "per-step accuracy"],
                        [[d, depth[d].get("n"), fmt(depth[d].get("following_rate")),
                          fmt(depth[d].get("step_accuracy"))] for d in ds]),
                  svg_bars(ds, [depth[d].get("following_rate") for d in ds],
                           "Following rate by depth (testbed)", vmax=1.0),
                  cap("Testbed chains of `depth` sub-tasks, scored exactly: the prediction is "
                      "split on '|'. following rate = share of chains with every step right "
                      "and no extra or missing step; per-step accuracy = steps right / steps "
                      "asked.")]
    if cx:
        parts += [table(["complexity (nodes)", "n", "exact match"],
                        [[c, cx[c].get("n"), fmt(cx[c].get("exact_match"))]
                         for c in level_keys(cx)]),
                  cap("Tree-Instruct rows composing that many operations; exact match = share "
                      "whose final answer is right.")]
    if isinstance(seq, dict):
        by = seq.get("by_depth") or {}
        rows = [[d, by[d].get("n"), by[d].get("judged"), by[d].get("followed"),
                 fmt(by[d].get("following_rate")), by[d].get("rejected"),
                 "; ".join(f"{r} ({n})" for r, n in (by[d].get("reject_reasons") or {}).items())]
                for d in level_keys(by)]
        rows.append(["all", seq.get("n"), seq.get("judged"), seq.get("followed"),
                     fmt(seq.get("following_rate")), seq.get("rejected"), ""])
        parts += ["<h3>SeqEval (judged)</h3>",
                  table(["depth", "n", "judged", "followed", "following rate", "rejected",
                         "reject reasons"], rows),
                  cap("The trained model answers every SeqEval prompt; the judge decides "
                      "whether the response did every sub-task. following rate = followed / "
                      "judged; rejected = no response or an unusable judge output (not "
                      "counted in the rate). Responses: eval/seqeval.jsonl.")]
    return "".join(parts) or None


def _train_html(history, done, path) -> str:
    parts = []
    if isinstance(done, dict):
        s = done.get("summary") or {}
        parts.append(table(["steps", "final loss", "tokens/s", "model", "seconds"],
                           [[s.get("steps"), fmt(s.get("final_loss")),
                             fmt(s.get("tokens_per_s"), 1), s.get("model"), done.get("seconds")]]))
    if not isinstance(history, list):
        return "".join(parts) + na(path)
    steps = [h.get("step") for h in history]
    parts += [svg_lines(steps, [h.get("loss") for h in history], "Training loss", ylabel="loss"),
              svg_lines(steps, [h.get("tokens_per_s") for h in history], "Throughput",
                        ylabel="tokens/s"),
              cap("loss = mean per-token cross-entropy of the response tokens of the training "
                  "batch at that optimiser step; tokens/s = training tokens processed per "
                  "second over all workers.")]
    return "".join(parts)


def _ground_truth_html(gt) -> str:
    return "".join([
        cap("Relationships planted in the synthetic testbed: sign of the effect of training on "
            "category j on category i (+ helps, - hurts, 0 none)."),
        table(["i", "j", "sign", "kind"],
              [[r.get("i"), r.get("j"), r.get("sign"), r.get("kind")]
               for r in gt.get("interactions", [])]),
        "<h3>Prerequisites</h3>",
        table(["base", "dependent"],
              [[r.get("base"), r.get("dependent")] for r in gt.get("prerequisites", [])]),
    ])


def _mix_sections(run_dir: Path, history) -> list[tuple[str, str]]:
    """Baselines table first, then Γ, the DAG and the mixture (each when its stage ran)."""
    from instructmix.evaluation import report_mix as rm

    def read(*parts):
        path = run_dir.joinpath(*parts)
        return json.loads(path.read_text()) if path.is_file() else None

    out = []
    compare, cost = read("compare", "results.json"), read("probe", "cost.json")
    tokens = history[-1].get("tokens") if isinstance(history, list) and history else None
    out.append(("Baselines at equal budget", rm.compare_html(compare, cost, tokens)
                if compare else cap("not run: compare.strategies is empty")))
    if inter := read("probe", "interactions.json"):
        out.append(("Interaction matrix Γ", rm.gamma_html(inter)))
    if deps := read("probe", "dependencies.json"):
        out.append(("Dependency DAG", rm.dag_html(deps)))
    if mixture := read("select", "mixture.json"):
        out.append(("Mixture", rm.mixture_html(mixture)))
    return out


def run_report(cfg, out: Path) -> dict:
    from instructmix.evaluation.report_augment import augment_html

    run_dir, out = Path(cfg.run_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    missing: list[str] = []
    strategy = cfg.select.strategy
    pool_p, hist_p = run_dir / "pool" / "stats.json", run_dir / "train" / "history.json"
    res_p, pred_p = run_dir / "eval" / "results.json", run_dir / "eval" / "predictions.jsonl"
    gt_p = run_dir / "pool" / "ground_truth.json"
    stats = _read_json(pool_p, missing)
    dones = {s: _read_json(run_dir / s / "_DONE.json", missing) for s in STAGES}
    dones = {s: d if isinstance(d, dict) else None for s, d in dones.items()}
    history = _read_json(hist_p, missing)
    results = _read_json(res_p, missing)
    preds = _read_jsonl(pred_p, missing)
    gt = _read_json(gt_p, []) if gt_p.is_file() else None
    aug_p = run_dir / "augment" / "stats.json"
    aug = _read_json(aug_p, []) if aug_p.is_file() else None
    by_strategy = {strategy: results} if isinstance(results, dict) else {}
    sel, train = dones["select"], dones["train"]
    stages = {s: (d or {}).get("seconds") for s, d in dones.items()}

    report = {
        "config": cfg.model_dump(mode="json"),
        "pool": stats,
        "selection": {"strategy": strategy, "summary": (sel or {}).get("summary"),
                      "seconds": (sel or {}).get("seconds")},
        "training": {"summary": (train or {}).get("summary"), "history": history},
        "eval": {"strategy": strategy, "results": results},
        "stages": stages,
        "ground_truth": gt,
        "probes": {k: _read_json(run_dir / "probe" / f"{k}.json", [])
                   for k in ("interactions", "dependencies", "cost")},
        "mixture": _read_json(run_dir / "select" / "mixture.json", []),
        "compare": _read_json(run_dir / "compare" / "results.json", []),
        "augment": aug,
        "missing": missing,
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(report, indent=2, default=str))

    if sel is None:
        sel_html = na(run_dir / "select" / "_DONE.json")
    else:
        s = sel.get("summary") or {}
        pc = s.get("per_category") or {}
        sel_html = (table(["strategy", "selected", "pool", "tokens"],
                          [[strategy, s.get("selected"), s.get("pool"), s.get("tokens")]])
                    + cap("selected = training items chosen by the strategy under the budget; "
                          "pool = accepted items available; tokens = tokens of the selection.")
                    + svg_bars(sorted(pc), [pc[c] for c in sorted(pc)],
                               f"Selected items per category ({strategy})", digits=0))
    mix_sections = _mix_sections(run_dir, history)
    depth_html = _depth_html(results)
    stage_rows = [[s, fmt(v, 1) if v is not None else f"not run (no {run_dir / s}/_DONE.json)"]
                  for s, v in stages.items()]
    sections = [
        *mix_sections[:1],
        ("Evaluation", _eval_html(by_strategy, preds, res_p, pred_p)),
        *([("By sequential depth", depth_html)] if depth_html else []),
        *([("Augmentation", augment_html(aug))] if isinstance(aug, dict) else []),
        *mix_sections[1:],
        ("Training", _train_html(history, train, hist_p)),
        (f"Selection ({strategy})", sel_html),
        ("Data pool", _pool_html(stats, pool_p)),
        ("Stage timings", table(["stage", "seconds"], stage_rows)
         + cap("seconds = wall-clock time of the stage's last successful run.")),
    ]
    if gt is not None:
        sections.append(("Planted ground truth (testbed)", _ground_truth_html(gt)))
    sections.append(("Config", f"<pre>{esc(json.dumps(report['config'], indent=2))}</pre>"))
    macro = (results or {}).get("macro_exact_match") if isinstance(results, dict) else None
    body = "".join(f"<h2>{esc(t)}</h2>{h}" for t, h in sections)
    html_path.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>instructmix report: '
        f"{esc(run_dir.name)}</title><style>{CSS}</style></head><body>"
        f"<h1>instructmix report: {esc(run_dir)}</h1>"
        f"<p>generated {esc(report['generated_at'])}; strategy <b>{esc(strategy)}</b>; "
        f"macro exact match <b>{esc(fmt(macro))}</b></p>{body}</body></html>")
    return {"report_json": str(json_path), "report_html": str(html_path),
            "strategy": strategy, "macro_exact_match": macro, "missing": len(missing)}
