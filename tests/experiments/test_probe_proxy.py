"""Probes on a proxy model (`probes.model`) different from the target, in one run, with two
rounds of probing and solving (`select.rounds`) as real Tune sweeps."""

import json

CATS = ["reverse", "upper", "rev_upper"]


def test_probes_train_the_proxy_in_rounds_and_the_run_trains_the_target(ray_local, tmp_path):
    from instructmix.pipeline import run_all
    from tests.conftest import tiny_config

    run = tmp_path / "run"
    proxy = {"n_layer": 1, "n_embd": 16, "n_head": 2, "max_positions": 64}
    cfg = tiny_config(
        run, pool={"testbed": {"items_per_category": 40, "eval_per_category": 2,
                               "categories": CATS}},
        probes={"model": proxy, "design": "intervention", "base_per_category": 8,
                "add_per_category": 8, "seeds": 1, "epochs": 1, "micro_batch_size": 4,
                "valid_per_category": 6, "warm_start_epochs": 1, "score": "loss",
                "dependencies": "asymmetry"},
        select={"strategy": "milp", "budget": 48, "trust_region": 0.2, "rounds": 2,
                "round_tolerance": 0.0}, train={"max_steps": 2})
    results = run_all(cfg, stop_after="train")

    target = json.loads((run / "model" / "model.json").read_text())
    made = json.loads((run / "probe" / "proxy.json").read_text())
    # stored relative to the run folder (a moved run, or a bucket's mirror, still finds it)
    assert made["path"] == "probe/proxy" and made["built"] and target["path"] == "model/hf"
    proxy_dir = str(run / "probe" / "proxy")
    assert not (run / "model" / "proxy.json").exists()  # the model stage builds the target
    assert made["parameters"] < target["parameters"]
    # every probe trial (warm start included) trained the proxy: the warm model is a proxy
    params = [json.loads(f.read_text())["trial"]
              for f in (run / "probe" / "tune").glob("*/*/params.json")]
    warm = [p for p in params if p["save_to"]]
    assert warm and all(p["model_path"] == proxy_dir for p in warm)
    assert {p["model_path"] for p in params} == {proxy_dir, str(run / "probe" / "warm" / "s0")}
    saved = json.loads((run / "probe" / "warm" / "s0" / "config.json").read_text())
    assert saved["n_embd"] == 16
    cost = json.loads((run / "probe" / "cost.json").read_text())
    assert cost["proxy"] and cost["probe_model"] == proxy_dir
    assert cost["probe_model_parameters"] == made["parameters"]
    assert cost["target_parameters"] == target["parameters"]
    # round 2 probed around round 1's mixture (a Tune sweep of its own) and the select
    # stage trained on the last round's mixture
    rounds = json.loads((run / "probe" / "rounds.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2] and rounds[1]["centre"] == rounds[0]["counts"]
    assert len(list((run / "probe" / "tune" / "round2").glob("*/result.json"))) == 4
    assert cost["round_trials"] == 4 and rounds[1]["probe_trials"] == 4
    mixture = json.loads((run / "select" / "mixture.json").read_text())
    assert mixture["counts"] == rounds[1]["counts"]
    for r in rounds:
        assert r["moved_share"] <= 0.2 + 1e-9
    # the final run trained the target, not the proxy
    trained = json.loads((run / "train" / "model" / "config.json").read_text())
    assert trained["n_embd"] == 32 and results["train"]["summary"]["steps"] == 2


def test_a_proxy_reruns_the_probes_but_not_the_target_stages(tmp_path):
    from instructmix.config import RunConfig
    from instructmix.layout import RunLayout
    from instructmix.pipeline import BY_NAME, fingerprint

    cfg = RunConfig.model_validate({"run_dir": str(tmp_path), "select": {"strategy": "milp"}})
    proxy = cfg.model.model_copy(update={"n_embd": 64})
    with_proxy = cfg.model_copy(update={"probes": cfg.probes.model_copy(
        update={"model": proxy})})
    lay = RunLayout(tmp_path)
    for stage in ("pool", "model", "policy"):
        lay.write_marker(stage, "done", {"fingerprint": stage})
    assert fingerprint(cfg, BY_NAME["model"], lay) == fingerprint(with_proxy, BY_NAME["model"],
                                                                   lay)
    assert fingerprint(cfg, BY_NAME["probe"], lay) != fingerprint(with_proxy, BY_NAME["probe"],
                                                                   lay)
