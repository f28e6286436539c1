"""The RAISE section of the report, from real artifacts written through the run layout: the
reward curve and PPO statistics per round, the policy's cost against the final run, the
final run's validation loss and categories picked; "not run" when the policy stage was
skipped; malformed inputs named as problems."""

from __future__ import annotations

import json
import math

import pytest

from instructmix.layout import POLICY, POOL, TRAIN, RunLayout, dumps
from instructmix.report.inputs import SKIPPED, STAGES, read_run
from instructmix.report.page import render_page
from instructmix.report.raise_section import (
    NOT_IN_POOL,
    TITLE,
    category_shares,
    raise_json,
    raise_section,
    windows,
)
from tests.report.fakes import BATCH_IDS, PICKED_POOL, RETURNS, fake_run, raise_run
from tests.report.svg import figure_titled, groups, leaks, svgs


def build(root, strategy: str = "raise"):
    """(run data, the section, the page holding only it)."""
    data = read_run(RunLayout(root))
    sec = raise_section(data, strategy)
    page = render_page(run_dir=str(root), run_name="run", generated_at="now",
                       strategy=strategy, headline=[], problems=data.problems, sections=[sec])
    return data, sec, page


def rows_of(sec: dict, first_header: str) -> list[list[str]]:
    found = [b for b in sec["blocks"] if b["kind"] == "table" and b["headers"][0] == first_header]
    assert len(found) == 1, first_header
    return found[0]["rows"]


def test_policy_is_a_stage_after_probe_and_may_be_skipped():
    assert STAGES.index("policy") == STAGES.index("probe") + 1
    assert SKIPPED["policy"] == POLICY.skipped


def test_reward_curve_and_ppo_statistics_per_round(tmp_path):
    raise_run(tmp_path)
    data, sec, page = build(tmp_path)
    assert data.problems == [] and sec["title"] == TITLE
    rows = rows_of(sec, "round")
    assert [r[:4] for r in rows] == [["0", "3", "0", "0.7000"], ["1", "2", "1", "1.2000"]]
    assert rows[0][5:] == ["-0.0125", "0.2500", "0.0042", "0.125", "30"]
    assert rows[1][5] == "-0.0250"
    fig = figure_titled(page, "RAISE reward curve: episode return per PPO round")
    points = groups(fig, "PathCollection_1")  # one dot per episode that finished
    assert len(points) == 1 and len(list(points[0].iter("use"))) == 5
    # every episode's return is listed, the failed one with its error
    for x in (x for r in RETURNS for x in r):
        assert f"<td>{x:.4f}</td>" in page
    assert "r001-e02" in page and "out of memory" in page
    assert "not run" not in page and "not available" not in page
    assert leaks(page) == []


def test_cost_of_the_policy_against_the_final_run(tmp_path):
    raise_run(tmp_path)
    _, sec, page = build(tmp_path)
    rows = {r[0]: r[1:] for r in rows_of(sec, "measure")}
    assert rows["optimizer steps"] == ["50", "20", "2.50×"]
    assert rows["tokens trained"] == ["5,030", "1,600", "3.14×"]
    assert rows["seconds: episodes' training vs. train stage"] == ["25.0", "9.0", "2.78×"]
    assert rows["seconds: policy stage vs. train stage (wall clock)"] == ["30.0", "9.0",
                                                                          "3.33×"]
    assert "policy training (2 rounds, 5 episodes, 1 failed)" in page
    assert "how many final runs&#39; worth of training the policy cost" in page


def test_final_run_validation_loss_and_category_shares(tmp_path):
    raise_run(tmp_path)
    data, sec, page = build(tmp_path)
    assert len(svgs(page)) == 3  # reward curve, validation loss, category shares
    assert figure_titled(page, "Validation loss of the final run") is not None
    assert figure_titled(page, "Share of each category in the batches (raise)") is not None
    rows = {r[0]: r[1:] for r in rows_of(sec, "category")}
    assert list(rows) == ["add", "reverse", NOT_IN_POOL]
    # pool share, 10 windows of 2 steps, whole run
    assert rows["reverse"] == ["0.50", *["1.00"] * 5, *["0.00"] * 5, "0.50"]
    assert rows["add"] == ["0.50", *["0.00"] * 5, *["1.00"] * 4, "0.88", "0.49"]
    assert rows[NOT_IN_POOL] == ["0.00", *["0.00"] * 9, "0.12", "0.01"]
    assert "20 steps, 80 rows trained on, 9 distinct pool rows" in page
    assert data.categories == PICKED_POOL


def test_report_json_keeps_the_numbers(tmp_path):
    raise_run(tmp_path)
    data, _, _ = build(tmp_path)
    out = json.loads(dumps(raise_json(data)))  # strict JSON
    assert [r["mean"] for r in out["returns"]] == pytest.approx([0.7, 1.2])
    assert out["returns"][1]["returns"] == RETURNS[1]
    assert out["cost_ratios"]["steps"] == {"policy": 50, "final_run": 20, "ratio": 2.5}
    assert out["category_shares"]["whole_run"]["reverse"] == 0.5
    assert out["valid_history"][0] == [0, 4.0] and out["skipped"] is None


def test_not_run_when_the_policy_stage_was_skipped(tmp_path):
    fake_run(tmp_path)
    RunLayout(tmp_path).write_json(POLICY.skipped, {"reason": "no strategy is raise"})
    data, sec, page = build(tmp_path, "iid")
    assert data.skipped["policy"] == "no strategy is raise"
    assert [b["kind"] for b in sec["blocks"]] == ["na"]
    assert "not run: no strategy is raise" in page
    assert "<svg" not in page and data.problems == []


def test_a_picked_run_without_its_artifacts_says_not_available(tmp_path):
    cfg = raise_run(tmp_path)
    lay = RunLayout(tmp_path)
    for art in (TRAIN.batch_ids, TRAIN.picker):
        lay.path(art).unlink()
    _, _, page = build(tmp_path, cfg.select.strategy)
    for art in (TRAIN.batch_ids, TRAIN.picker):
        assert f"not available: {lay.path(art)}" in page
    _, _, page = build(tmp_path, "iid")  # a static run need not have them
    assert "not available" not in page


def test_malformed_rounds_file_is_named_as_a_problem(tmp_path):
    raise_run(tmp_path)
    path = RunLayout(tmp_path).path(POLICY.rounds)
    path.write_text('[{"round": 0, "episodes": [')
    data, sec, page = build(tmp_path)
    assert len(data.problems) == 1 and f"{path}: not valid JSON" in data.problems[0]
    assert f"problem: {path}: not valid JSON" in page
    assert '<section id="problems">' in page
    assert "RAISE reward curve" not in page
    assert "Cost of training the policy" in page  # the rest is still shown


def test_a_malformed_round_record_is_named_and_the_others_shown(tmp_path):
    raise_run(tmp_path)
    lay = RunLayout(tmp_path)
    rounds = lay.read_json(POLICY.rounds)
    lay.write_json(POLICY.rounds, [rounds[0], {"round": 1, "episodes": "lost"}])
    data, sec, page = build(tmp_path)
    assert len(data.problems) == 1
    assert f"problem: {lay.path(POLICY.rounds)}: record 1 is not a round" in page
    assert [r[0] for r in rows_of(sec, "round")] == ["0"]


@pytest.mark.parametrize(("art", "value", "says"), [
    (POLICY.rounds, {"round": 0}, "not a list of round records (found JSON dict)"),
    (POLICY.cost, [1, 2], "not an object of costs (found JSON list)"),
    (TRAIN.batch_ids, [["a"], "b"], "batch 1 is not a list of pool ids"),
    (TRAIN.picker, {"valid_history": [[0, 1.0, 2]]}, "valid_history is not a list of "
                                                     "[step, validation loss] pairs"),
])
def test_inputs_of_another_shape_are_problems(tmp_path, art, value, says):
    raise_run(tmp_path)
    lay = RunLayout(tmp_path)
    lay.write_json(art, value)
    data, _, page = build(tmp_path)
    assert data.problems == [f"{lay.path(art)}: {says}; not shown"]
    assert f"problem: {lay.path(art)}: {says}" in page


def test_an_unreadable_pool_is_a_problem(tmp_path):
    raise_run(tmp_path)
    folder = RunLayout(tmp_path).path(POOL.shards)
    for f in folder.iterdir():
        f.write_bytes(b"not parquet")
    data, _, page = build(tmp_path)
    assert len(data.problems) == 1 and str(folder) in data.problems[0]
    assert "Categories picked over the final run (raise)" in page
    assert f"problem: {folder}: the pool" in page


def test_windows_cover_the_run_in_tenths():
    assert windows(20) == [(a, a + 2) for a in range(0, 20, 2)]
    assert windows(7) == [(a, a + 1) for a in range(7)]
    assert windows(25)[-1] == (24, 25) and len(windows(25)) == 9
    assert windows(0) == []
    shares = category_shares(BATCH_IDS[:1], PICKED_POOL)
    assert shares["windows"] == ["1"] and shares["shares"] == {"reverse": [1.0]}
    assert math.isclose(shares["pool"]["reverse"], 0.5)


def test_compare_section_shows_paired_differences(tmp_path):
    from instructmix.layout import COMPARE, RunLayout
    from instructmix.report.compare import _paired_blocks
    from instructmix.report.inputs import RunData

    layout = RunLayout(tmp_path, "compare")
    paired = {"good": {"differences": [0.1, 0.12, 0.14], "mean": 0.12, "lo": 0.07, "hi": 0.17,
                       "beats": True, "loses": False}}
    layout.write_json(COMPARE.results, {"cells": [], "strategies": {},
                                        "paired": {"baseline": "iid", "exact_match": paired}})
    data = RunData(layout)
    data.compare = layout.read_json(COMPARE.results)
    blocks = _paired_blocks(data)
    rows = blocks[1]["rows"]
    assert blocks[0] == {"kind": "heading", "text": "Paired differences against iid"}
    assert [str(c) for c in rows[0]][:3] == ["good − iid", "exact match", "+0.100, +0.120, +0.140"]
    assert "beats iid" in str(rows[0][-1])


def test_dag_section_lists_order_probes():
    from instructmix.report.mix import _order_blocks

    deps = {"estimator": "order", "order_probes": [
        {"base": "upper", "dependent": "rev_upper", "effect": 0.058, "lo": 0.032, "hi": 0.084,
         "per_seed": [0.05, 0.06, 0.064], "effect_gamma_units": 0.9, "edge": True,
         "reason": "interval excludes 0"}]}
    heading, table = _order_blocks(deps)
    assert heading["text"] == "Order probes"
    row = [str(c) for c in table["rows"][0]]
    assert row[:3] == ["upper", "rev_upper", "0.058"] and "[0.032, 0.084]" in row
    assert _order_blocks({"estimator": "asymmetry"}) == []
