"""The run report from a fake run directory (no Ray, no model)."""

from __future__ import annotations

import json

from instructmix.config import RunConfig
from instructmix.evaluation.report import run_report, svg_bars, svg_lines

CATS = ["reverse", "add"]
STATS = {
    "read": 10, "accepted": 8, "rejected": 2, "counts_add_up": True,
    "rejected_by_reason": {"too_long": 1, "empty_output": 1},
    "categories_assigned_by_kmeans": 0,
    "per_category": {"reverse": {"items": 5, "tokens": 50}, "add": {"items": 3, "tokens": 30}},
    "per_source": {"testbed": 10},
    "eval": {"read": 4, "accepted": 4, "rejected": 0, "per_category": {"reverse": 2, "add": 2}},
}
SELECT = {"selected": 6, "pool": 8, "tokens": 60, "per_category": {"reverse": 4, "add": 2}}
HISTORY = [{"step": s, "epoch": 0, "loss": 3.0 - 0.5 * s, "lr": 1e-3, "tokens_per_s": 100.0 + s}
           for s in range(1, 5)]
TRAIN = {"steps": 4, "final_loss": 1.0, "tokens_per_s": 103.0, "model": "train/model"}
RESULTS = {"per_category": {"reverse": {"n": 2, "exact_match": 0.5, "loss": 1.2},
                            "add": {"n": 2, "exact_match": None, "loss": 0.8}},
           "macro_exact_match": 0.5, "macro_loss": 1.0}
PREDS = [{"id": f"{c}-{k}", "category": c, "loss": 1.0, "prediction": "<b>x</b> & y",
          "correct": k == 0} for c in CATS for k in range(5)]
GT = {"interactions": [{"i": "add", "j": "double", "sign": "+", "kind": "synergy"}],
      "prerequisites": [{"base": "reverse", "dependent": "rev_upper"}]}


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def fake_run(root, with_eval_results=True):
    _write(root / "pool" / "stats.json", STATS)
    _write(root / "pool" / "ground_truth.json", GT)
    for stage, secs in [("pool", 1.5), ("model", 0.2), ("select", 0.7), ("eval", 3.0)]:
        _write(root / stage / "_DONE.json", {"fingerprint": "f", "seconds": secs, "summary": {}})
    _write(root / "select" / "_DONE.json", {"fingerprint": "f", "seconds": 0.7, "summary": SELECT})
    _write(root / "train" / "_DONE.json", {"fingerprint": "f", "seconds": 9.0, "summary": TRAIN})
    _write(root / "train" / "history.json", HISTORY)
    if with_eval_results:
        _write(root / "eval" / "results.json", RESULTS)
    (root / "eval" / "predictions.jsonl").write_text("\n".join(json.dumps(p) for p in PREDS))
    (root / "report").mkdir()
    return RunConfig(run_dir=str(root))


def test_report_round_trip(tmp_path):
    cfg = fake_run(tmp_path)
    summary = run_report(cfg, tmp_path / "report")
    assert summary["macro_exact_match"] == 0.5

    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    for key in ["config", "pool", "selection", "training", "eval", "stages", "generated_at"]:
        assert key in rep
    assert rep["config"] == cfg.model_dump(mode="json")
    assert rep["pool"] == STATS
    assert rep["selection"]["strategy"] == "iid"
    assert rep["selection"]["summary"] == SELECT
    assert rep["training"]["summary"] == TRAIN
    assert rep["training"]["history"] == HISTORY
    assert rep["eval"]["results"] == RESULTS
    assert rep["stages"] == {"pool": 1.5, "model": 0.2, "select": 0.7, "train": 9.0, "eval": 3.0,
                             "probe": None, "augment": None, "compare": None}

    page = (tmp_path / "report" / "report.html").read_text()
    # em + loss bars, loss + tokens/s lines, selection bars, pool bars
    assert page.count("<svg") >= 6
    for cat in CATS:
        assert cat in page
    assert "<script" not in page and "http" not in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt; &amp; y" in page
    assert page.count("add-") == 3  # at most three example predictions per category
    assert "<th>iid</th>" in page
    assert "too_long" in page and "rev_upper" in page
    assert "not available" not in page


def test_report_without_eval_results(tmp_path):
    cfg = fake_run(tmp_path, with_eval_results=False)
    summary = run_report(cfg, tmp_path / "report")
    assert summary["macro_exact_match"] is None
    page = (tmp_path / "report" / "report.html").read_text()
    assert f"not available: {tmp_path / 'eval' / 'results.json'}" in page
    assert "Training loss" in page
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    assert rep["eval"]["results"] is None


def test_empty_run_dir_does_not_crash(tmp_path):
    (tmp_path / "report").mkdir()
    run_report(RunConfig(run_dir=str(tmp_path)), tmp_path / "report")
    assert "not available" in (tmp_path / "report" / "report.html").read_text()


def test_svg_helpers_handle_missing_values():
    assert "n/a" in svg_bars(["a", "b"], [None, float("nan")], "t", vmax=1.0)
    assert "no data" in svg_lines([], [], "t")
    assert "<polyline" in svg_lines([1], [2.0], "t")
