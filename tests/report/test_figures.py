"""The report's figures: every one present, and each showing what it must (error bars for
every arm, a colour bar, every DAG node labelled, intervals printed as such)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from instructmix.layout import REPORT, RunLayout
from instructmix.report import run_report
from instructmix.report.dag import TIERS, dag_figure
from instructmix.report.fmt import slug
from instructmix.report.probe_figures import gamma_heatmap, gamma_norm
from tests.report.fakes import ARMS, DEPENDENCIES, INTERACTIONS, PROBE_CATS, full_run
from tests.report.svg import figure_titled, groups, parse, svgs, texts

# compare 2, eval 2, augment 1, Γ 1, DAG 1, mixture 1 + Γ of 2 rounds, training 2, selection 1,
# pool 1
FULL_RUN_FIGURES = 14


@pytest.fixture(scope="module")
def full_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    run_report(full_run(root), RunLayout(root, "report"))
    return RunLayout(root).read_text(REPORT.html)


def test_every_figure_is_there(full_page):
    assert len(svgs(full_page)) == FULL_RUN_FIGURES
    for svg in svgs(full_page):
        root = parse(svg)  # well-formed, self-contained
        assert root.get("aria-label") and root.iter("path")
    assert "http" not in full_page and "<script" not in full_page and "<img" not in full_page


@pytest.mark.parametrize("metric", ["exact match", "token accuracy"])
def test_compare_bars_have_error_bars_for_every_arm(full_page, metric):
    fig = figure_titled(full_page, f"Compare: {metric} per category, every arm")
    for arm in ARMS:
        bars = groups(fig, f"errorbar-{slug(arm)}")
        assert len(bars) == 1, arm
        # one error bar per group: reverse, add, macro
        assert len(list(bars[0].iter("path"))) == 3, arm
    labels = texts(fig)
    assert set(ARMS) <= set(labels)  # legend
    assert {"add", "reverse", "macro", "category"} <= set(labels)
    assert f"{metric} (mean over seeds)" in labels
    assert groups(fig, "legend_1")


def test_gamma_heat_map_has_colour_bar_and_intervals(full_page):
    fig = figure_titled(full_page, "Interaction matrix Γ (γ and its interval)")
    assert groups(fig, "colorbar")
    labels = " ".join(texts(fig))
    assert "symmetric log scale" in labels
    assert "ability i scored (row)" in labels and "category j added" in labels
    assert "(−∞, ∞)" in labels  # the unbounded row
    assert "[0.10, 0.50]" in labels
    assert labels.count("unidentified") == len(PROBE_CATS)
    assert "n/a" not in labels


def test_gamma_scale_is_symmetric_and_does_not_saturate_at_one():
    g = np.array([[1.0, 0.3], [-0.4, 1.0]])
    norm = gamma_norm(g)
    assert norm.vmin == -norm.vmax and norm.vmax >= 2
    assert 0.5 < norm(0.3) < norm(1.0) < 0.95 and norm(0.0) == pytest.approx(0.5)
    big = gamma_norm(np.array([[1.0, 500.0], [-3.0, 1.0]]))
    assert big.vmax == 500 and big(1.0) < big(30.0) < big(500.0) == pytest.approx(1.0)
    assert big(0.3) - big(0.0) > 0.05  # small entries still get a colour


def test_gamma_heat_map_is_deterministic():
    a = gamma_heatmap(PROBE_CATS, INTERACTIONS, "Γ")
    assert a == gamma_heatmap(PROBE_CATS, INTERACTIONS, "Γ")


def test_dag_labels_every_node_and_draws_every_edge(full_page):
    fig = figure_titled(full_page, "Dependency DAG by tier")
    labels = texts(fig)
    for cat in PROBE_CATS:
        assert labels.count(cat) == 1, cat
        assert len(groups(fig, f"dag-node-{slug(cat)}")) == 1, cat
    assert {"base", "middle", "dependent"} <= set(labels)
    edges = [g for g in fig.iter("g") if "dag-edge_" in g.get("id", "")]
    assert len(edges) == len(DEPENDENCIES["edges"])
    for e in edges:  # a line and its arrowhead
        assert len(list(e.iter("path"))) >= 2


def test_dag_arrowheads_end_at_their_own_node():
    deps = {"categories": ["a", "b", "c"], "tiers": {"a": "base", "b": "dependent",
                                                      "c": "dependent"},
            "edges": [{"base": "a", "dependent": "b", "weight": 1.0},
                      {"base": "a", "dependent": "c", "weight": 1.0}]}
    fig = parse(dag_figure(deps, "t"))
    heads = []
    for e in (g for g in fig.iter("g") if "dag-edge_" in g.get("id", "")):
        d = list(e.iter("path"))[-1].get("d")
        heads.append(tuple(float(x) for x in d.replace("\n", " ").split()[1:3]))
    assert len(heads) == 2 and heads[0] != heads[1]
    assert all(math.isfinite(v) for h in heads for v in h)


def test_training_loss_curve_has_axes_and_legend(full_page):
    fig = figure_titled(full_page, "Training loss")
    labels = texts(fig)
    assert "optimizer step" in labels and "loss (cross-entropy per token)" in labels
    assert groups(fig, "legend_1")
    assert "training loss (mean over the logging window)" in labels


def _points(d: str) -> list[tuple[float, float]]:
    nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", d)]
    return list(zip(nums[::2], nums[1::2], strict=False))


def test_dag_edges_never_cross_a_label_box():
    cats = [f"category_{k}" for k in range(12)]
    pairs = [(0, 2), (3, 1), (1, 4), (0, 5), (1, 7), (6, 11), (9, 11), (3, 8)]
    deps = {"categories": cats, "tiers": {c: TIERS[k % 3] for k, c in enumerate(cats)},
            "edges": [{"base": cats[a], "dependent": cats[b], "weight": 1.0}
                      for a, b in pairs]}
    fig = parse(dag_figure(deps, "t"))
    boxes = {}
    for cat in cats:
        pts = _points(next(groups(fig, f"dag-node-{slug(cat)}")[0].iter("path")).get("d"))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        boxes[cat] = (min(xs) + 1, min(ys) + 1, max(xs) - 1, max(ys) - 1)  # inside, strictly
    assert sorted(texts(fig)).count("category_1") == 1
    for a, b in pairs:
        line = _points(next(groups(fig, f"dag-edge_{cats[a]}_to_{cats[b]}")[0]
                            .iter("path")).get("d"))
        for (x0, y0), (x1, y1) in zip(line, line[1:], strict=False):
            for k in range(101):
                x, y = x0 + (x1 - x0) * k / 100, y0 + (y1 - y0) * k / 100
                inside = [c for c, (u0, v0, u1, v1) in boxes.items()
                          if u0 < x < u1 and v0 < y < v1]
                assert not inside, f"edge {cats[a]} -> {cats[b]} runs through {inside}"
