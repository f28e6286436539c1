"""The report page and report.json: no Python reprs, strict JSON, numbers that say what they
are, a headline that quotes the compare table, and problems shown (never skipped)."""

from __future__ import annotations

import json
import logging
import math

import pytest

from instructmix.config import RunConfig
from instructmix.layout import COMPARE, EVAL, REPORT, TRAIN, RunLayout
from instructmix.report import run_report
from instructmix.report.compare import best_arm
from instructmix.report.fmt import interval, num, prose, text
from tests.report.fakes import HISTORY, fake_run, full_run
from tests.report.svg import leaks


def _no_constants(name):
    raise ValueError(f"report.json holds {name}")


def build(root, cfg):
    summary = run_report(cfg, RunLayout(root, "report"))
    lay = RunLayout(root)
    rep = json.loads(lay.read_text(REPORT.json), parse_constant=_no_constants)
    return summary, rep, lay.read_text(REPORT.html)


@pytest.mark.parametrize("make", [fake_run, full_run])
def test_no_python_reprs_on_the_page(tmp_path, make):
    _, _, page = build(tmp_path, make(tmp_path))
    assert leaks(page) == []


def test_no_python_reprs_on_an_empty_run(tmp_path):
    _, _, page = build(tmp_path, RunConfig(run_dir=str(tmp_path)))
    assert leaks(page) == []


def test_numbers_have_thousands_separators_and_names(tmp_path):
    _, _, page = build(tmp_path, full_run(tmp_path))
    assert "12,345" in page and "1,500" in page  # probe tokens, tokens trained
    assert "12345" not in page and "1.5e+03" not in page
    assert "<th>probe tokens trained</th>" in page and "<th>tokens kept</th>" in page
    # the compare stage's verdict sentences, with the reason when an arm is not shown better
    assert "what the paired differences show" in page and "mix − iid, macro exact match" in page
    # rounds of probing and solving: one row per round, its mixture, a Γ figure per round
    assert "Rounds of probing and solving" in page and "Γ of round 2" in page
    assert "add 1, reverse 5" in page and "6,789" in page and "round_tolerance=0.01" in page
    # probe compute: 12,345 tokens x 1,000 (proxy) / (1,600 final tokens x 8,000 (target))
    assert "proxy (1,000 parameters)" in page and ">0.964<" in page and ">7.716<" in page
    assert num(1000) == "1,000" and num(1234567.0) == "1,234,567" and num(None) == "n/a"
    assert text({"a": [1, None], "b": True}) == "a: 1, n/a; b: yes"
    assert interval(-math.inf, math.inf) == "(−∞, ∞)" and interval(None, None) == "no interval"
    assert interval(0.1, math.inf) == "[0.10, ∞)" and interval(math.nan, 1.0) == "no interval"
    assert prose("cycle among ['a', 'b']") == "cycle among a, b"
    assert prose("unidentified (NaN) rows, lo -inf") == "unidentified (not a number) rows, lo −∞"


def test_report_json_is_strict(tmp_path):
    cfg = full_run(tmp_path)
    bad = [dict(h) for h in HISTORY]
    bad[1]["loss"] = math.nan
    # an old-style writer: NaN as a bare JSON constant
    (RunLayout(tmp_path).path(TRAIN.history)).write_text(json.dumps(bad))
    _, rep, page = build(tmp_path, cfg)  # parse_constant raises on NaN/Infinity
    assert rep["training"]["history"][1]["loss"] is None
    listed = rep["_nonfinite_as_null"]
    assert "training.history[1].loss = nan" in listed
    # bounds the probe stage wrote as null (listed) come back as unbounded intervals
    assert "probes.interactions.lo[1][0] = -inf" in listed
    assert "probes.interactions.hi[1][0] = inf" in listed
    assert "(−∞, ∞)" in page and leaks(page) == []


def test_headline_quotes_the_best_arm_and_the_final_run(tmp_path):
    summary, rep, page = build(tmp_path, full_run(tmp_path))
    best = ("Best compare arm: mix+sit, macro exact match 0.305 ± 0.005 (mean ± std over "
            "3 seeds: 0, 1, 2)")
    final = ("Final run (iid, one seed 0, not a mean over seeds): macro exact match 0.500, "
             "macro token accuracy n/a, macro eval loss 1.000.")
    assert best in page and final in page
    assert page.index(best) < page.index("<section")  # above every section
    assert summary["best_arm"] == "mix+sit" and summary["macro_exact_match"] == 0.5
    assert rep["headline"]["best"]["arm"] == "mix+sit"
    assert rep["headline"]["best"]["mean"] == pytest.approx(0.305)
    assert rep["headline"]["final"]["seed"] == 0


def test_best_arm_falls_back_to_token_accuracy_and_keeps_the_first_of_a_tie():
    cell = {"mean": 0.5, "std": 0.1, "n": 2}
    agg = {"a": {"macro_exact_match": None, "macro_token_accuracy": cell, "seeds": [0, 1]},
           "b": {"macro_exact_match": None, "macro_token_accuracy": cell, "seeds": [0, 1]}}
    best = best_arm(agg)
    assert best["arm"] == "a" and best["label"] == "macro token accuracy"
    assert best_arm({"a": {"macro_exact_match": None}}) is None


def test_headline_without_compare(tmp_path):
    _, rep, page = build(tmp_path, fake_run(tmp_path))
    assert "Compare stage not run: no arms to rank." in page
    assert "Final run (iid, one seed 0" in page and rep["headline"]["best"] is None


def test_skipped_stage_says_why(tmp_path):
    cfg = fake_run(tmp_path)
    RunLayout(tmp_path).write_json(COMPARE.skipped, {"reason": "compare.strategies is empty"})
    _, rep, page = build(tmp_path, cfg)
    assert "not run: compare.strategies is empty" in page
    assert rep["skipped"] == {"compare": "compare.strategies is empty"}


def test_malformed_jsonl_line_is_shown_and_logged(tmp_path, caplog):
    cfg = fake_run(tmp_path)
    path = RunLayout(tmp_path).path(EVAL.predictions)
    lines = path.read_text().splitlines()
    lines.insert(3, '{"id": "reverse-9", "prediction": ')  # line 4 is cut short
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="instructmix"):
        _, rep, page = build(tmp_path, cfg)
    where = f"{path}:4"
    assert any(where in r.getMessage() for r in caplog.records)
    assert len(rep["problems"]) == 1 and where in rep["problems"][0]
    assert '<section id="problems">' in page
    problems = page[page.index('<section id="problems">'):page.index("</section>")]
    assert where in problems
    # and the section that needed the file says so, next to it
    examples = page[page.index("Example predictions"):]
    assert f"problem: {where}" in examples[:2000]


def test_malformed_json_is_shown(tmp_path):
    cfg = fake_run(tmp_path)
    path = RunLayout(tmp_path).path(EVAL.results)
    path.write_text('{"per_category": {\n  "add": }')
    summary, rep, page = build(tmp_path, cfg)
    assert summary["problems"] == 1 and summary["macro_exact_match"] is None
    assert f"{path}: not valid JSON" in rep["problems"][0] and "line 2" in rep["problems"][0]
    assert f"problem: {path}: not valid JSON" in page
    assert "not available: " + str(path) not in page


def test_odd_input_shape_is_a_problem_not_a_crash(tmp_path):
    cfg = fake_run(tmp_path)
    RunLayout(tmp_path).write_json(COMPARE.results, {"strategies": {"iid": {"seeds": [0]}}})
    summary, rep, page = build(tmp_path, cfg)
    assert summary["problems"] == 1
    assert "section Baselines at equal steps (compare) could not be drawn" in page
    assert "Evaluation of the final run" in page  # the rest is still there
