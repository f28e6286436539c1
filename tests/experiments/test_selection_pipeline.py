"""Probes on a real Ray Tune sweep -> Γ -> DAG -> MILP mixture -> curriculum order kept
through Ray Train + DeepSpeed, and the baselines trained side by side."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from instructmix.pipeline import run_all
from instructmix.runtime import FAIL_TRIAL
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow
CATS = ["reverse", "upper", "rev_upper"]


def test_probes_mixture_curriculum_end_to_end(ray_local, tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setenv(FAIL_TRIAL, "base-s1")
    cfg = tiny_config(
        run, pool={"testbed": {"items_per_category": 60, "eval_per_category": 4,
                               "categories": CATS}},
        probes={"base_per_category": 10, "add_per_category": 10, "seeds": 2,
                "random_mixtures": 1, "epochs": 1, "micro_batch_size": 4,
                "valid_per_category": 6, "max_failures": 1,
                "warm_start_epochs": 1, "score": "token_accuracy",
                "dependencies": "asymmetry"},  # order probes: tests/probes/test_order.py
        select={"strategy": "milp", "curriculum": "dependency", "budget": 96,
                "trust_region": 0.5},
        train={"log_batch_ids": True, "max_steps": None, "epochs": 2, "micro_batch_size": 8},
        compare={"strategies": ["iid", "milp+curriculum"], "seeds": [0]},
        eval={"batch_size": 5})
    run_all(cfg)

    # 9 probe trials (base + 3 categories, x 2 seeds, + 1 random) ran as Tune trials; the
    # trial that failed once was retried, none is missing
    probes = json.loads((run / "probe" / "probes.json").read_text())
    assert len(probes["trials"]) == 9 and probes["failed"] == []
    assert (run / "probe" / "failed-once-base-s1").exists()
    assert all(set(t["loss"]) == set(CATS) and min(t["loss"].values()) > 0
               for t in probes["trials"])
    assert len(list((run / "probe" / "tune" / "probes").glob("*/result.json"))) == 9
    # warm start: one D0 trial per seed saved a model; that seed's probes started from it
    cost = json.loads((run / "probe" / "cost.json").read_text())
    assert cost["warm_start_trials"] == 2
    for s in (0, 1):
        assert (run / "probe" / "warm" / f"s{s}" / "model.safetensors").is_file()
    starts = {json.loads(f.read_text())["trial"]["name"]: json.loads(f.read_text())["trial"][
        "model_path"] for f in (run / "probe" / "tune" / "probes").glob("*/params.json")}
    assert starts["base-s1"] == starts["reverse-s1"] == str(run / "probe" / "warm" / "s1")
    assert starts["random-0"] == str(run / "probe" / "warm" / "s0")
    # probe and compare trials score in batches of eval.batch_size, as the eval stage does
    params = [json.loads(f.read_text())["trial"] for stage in ("probe", "compare")
              for f in (run / stage / "tune").glob("*/*/params.json")]
    assert len(params) == 9 + 2 + 2  # probes, warm starts, compare cells
    assert {p["score_batch_size"] for p in params} == {5}

    inter = json.loads((run / "probe" / "interactions.json").read_text())
    # scores are token accuracies: delta_ij = acc_i(D0 + j) - acc_i(D0), averaged over seeds
    assert inter["score"] == "token_accuracy"
    acc = {(t["probe"], t["seed"]): t["token_accuracy"] for t in probes["trials"]}
    assert all(0 <= v <= 1 for a in acc.values() for v in a.values())
    cats = inter["categories"]
    want = [[np.mean([acc[(j, s)][i] - acc[("base", s)][i] for s in (0, 1)]) for j in cats]
            for i in cats]
    assert np.allclose(np.array(inter["delta"], dtype=float), want)
    gamma = np.array(inter["gamma"], dtype=float)
    identified = [i for i, c in enumerate(inter["categories"]) if c not in inter["unidentified"]]
    assert np.allclose(np.diag(gamma)[identified], 1.0)
    assert inter["n_seeds"] == 2 and "regression" in inter and "sign_recovery" in inter
    deps = json.loads((run / "probe" / "dependencies.json").read_text())
    assert set(deps["tiers"]) == set(CATS)

    # mixture: integer counts at the budget; every pool row accounted for with a reason
    mixture = json.loads((run / "select" / "mixture.json").read_text())
    assert mixture["status"] == "optimal" and sum(mixture["counts"].values()) == 96
    sel = pq.read_table(run / "select" / "selection.parquet").to_pandas()
    assert len(sel) == 3 * 60 and sel["reason"].str.len().min() > 0
    assert sel["selected"].sum() == 96 and sel["reason"].str.startswith("held out").sum() == 18
    held = set(json.loads((run / "probe" / "validation_ids.json").read_text()))
    assert not (held & set(sel.loc[sel["selected"], "id"]))

    # the curriculum spans the whole run (both passes laid out in one stream, not one
    # pass replayed), and it is the order the DeepSpeed workers trained in, batch by batch
    one_pass = pq.read_table(run / "select" / "train.parquet").column("id").to_pylist()
    stream = pq.read_table(run / "select" / "stream.parquet").column("id").to_pylist()
    assert sorted(stream) == sorted(one_pass * 2) and stream != one_pass * 2
    seen = json.loads((run / "train" / "batch_ids.json").read_text())
    assert [i for batch in seen for i in batch] == stream[: 16 * len(seen)] and len(seen) == 12
    assert "phases" in mixture and len(mixture["phases"]) == 3 and mixture["stream_epochs"] == 2

    compare = json.loads((run / "compare" / "results.json").read_text())
    assert set(compare["strategies"]) == {"iid", "milp+curriculum"}
    for cell in compare["cells"]:
        assert set(cell["exact_match"]) == set(CATS) and cell["train_tokens"] > 0
        assert cell["whole_run_curriculum"] == (cell["strategy"] == "milp+curriculum")
        assert cell["steps"] == 12  # both arms: 96 rows / 16 x 2 passes
    report = (run / "report" / "report.html").read_text()
    for heading in ("Interaction matrix", "Dependency DAG", "Mixture", "Baselines"):
        assert heading in report
