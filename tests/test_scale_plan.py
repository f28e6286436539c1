"""scripts/scale_plan.py: docs/SCALE.md holds exactly the tables it prints; its trial count
matches the probe design's own plans; its memory is DeepSpeed's estimator."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import numpy as np
import pytest

from instructmix.config import ProbesConfig, load_config
from instructmix.probes.design import plan
from instructmix.probes.order import candidates, plan_order

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("scale_plan", ROOT / "scripts" / "scale_plan.py")
sp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sp)


def test_docs_table_is_the_scripts_output():
    doc = (ROOT / "docs" / "SCALE.md").read_text()
    table = re.search(r"<!-- scale_plan:begin -->\n```\n(.*?)\n```\n<!-- scale_plan:end -->",
                      doc, re.S)
    assert table, "docs/SCALE.md lost its scale_plan markers"
    got = sp.tables(load_config(ROOT / "configs" / "cluster.yaml"))
    assert table.group(1) == got, "re-run `python scripts/scale_plan.py` and paste it"


@pytest.mark.parametrize("design", ["intervention", "both"])
def test_trial_count_matches_the_probe_plans(design):
    c = 5
    cats = np.repeat([f"c{k}" for k in range(c)], 20).astype(object)
    usable = np.ones(len(cats), dtype=bool)
    pc = ProbesConfig(design=design, base_per_category=3, add_per_category=2, seeds=2,
                      random_mixtures=3, epochs=2, max_order_pairs=4)
    n = sp.probe_trials(c, pc)
    probes, _ = plan(cats, usable, pc, seed=0)
    assert len(probes) == n["intervention"] + n["random"]
    # every pair a candidate, the kept ones disjoint (c0-c1, c2-c3): the most order probes
    g, d = np.ones((c, c)), np.ones((c, c))
    d[0, 1] = d[1, 0] = 3
    d[2, 3] = d[3, 2] = 2
    pairs, _ = candidates(g, d, [f"c{k}" for k in range(c)], pc.max_order_pairs)
    order, _ = plan_order(cats, usable, pc, 0, pairs)
    assert len(order) == n["order"]
    shared, _ = plan_order(cats, usable, pc, 0, candidates(g, g, sorted(set(cats)), 4)[0])
    assert len(shared) < n["order"]  # pairs sharing a dependent share its alone arm
    if design == "intervention":  # random mixtures have a random size
        rows = sum(len(p["rows"]) for p in probes) * pc.epochs + sum(len(p["rows"]) for p in order)
        assert rows == sp.probe_rows(c, pc)


def test_hand_count_cluster_config_50_categories():
    pc = load_config(ROOT / "configs" / "cluster.yaml").probes
    # 3 seeds x (D0 + 50 interventions) + 3 seeds x (20 directed pairs + 20 alone arms)
    assert sum(sp.probe_trials(50, pc).values()) == 3 * 51 + 3 * (20 + 20)
    d0 = 200 * 50
    assert sp.probe_rows(50, pc) == 3 * (d0 + 50 * (d0 + 200)) + 120 * 2 * 200


def _printed(fn, *args, option: str) -> float:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(*args)
    line = next(ln for ln in out.getvalue().splitlines() if ln.endswith(option))
    return float(line.split("|")[1].strip().removesuffix("GB"))


def test_zero_memory_is_deepspeeds_estimate():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold
    from deepspeed.runtime.zero.stage_1_and_2 import (
        estimate_zero2_model_states_mem_needs_all_cold,
    )

    total, largest = sp.MODELS["70B"]
    z2, z3 = sp.zero_gib("70B", 8, 4)
    assert z2 == pytest.approx(_printed(estimate_zero2_model_states_mem_needs_all_cold, total,
                                        8, 4, option="offload_optimizer=none"), abs=0.01)
    assert z3 == pytest.approx(_printed(
        estimate_zero3_model_states_mem_needs_all_cold, total, largest, 8, 4,
        option="offload_param=none, offload_optimizer=none, zero_init=1"), abs=0.01)
    assert z3 == pytest.approx((4 * largest + 18 * total / 32) / 2**30, rel=1e-6)  # by hand
