"""Checks across sections: each fails at load time with one line naming every field
involved and its value (no Ray, no model loading)."""

import json

import pytest

from instructmix.config import ConfigError, RunConfig, load_config


def _problems(overrides, path=None) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    return str(e.value)


def _one_line(msg: str, *needles: str) -> str:
    """The single line of `msg` that names every needle."""
    lines = [line for line in msg.splitlines() if all(n in line for n in needles)]
    assert len(lines) == 1, msg
    return lines[0]


# --- eval.seqeval needs a judge that generates text ------------------------------------

def test_seqeval_without_judge():
    msg = _problems(["eval.seqeval=/data/seqEval.json"])
    _one_line(msg, "eval.seqeval", "eval.judge", "'/data/seqEval.json'", "not set")


def test_seqeval_with_rules_judge():
    msg = _problems(["eval.seqeval=s.json", "eval.judge.backend=rules"])
    _one_line(msg, "eval.seqeval", "eval.judge.backend", "'rules'", "'s.json'")


@pytest.mark.parametrize("judge", ["{backend: hf}",
                                   "{backend: http, base_url: 'http://127.0.0.1:9/v1'}"])
def test_seqeval_with_text_judge_loads(judge):
    cfg = load_config(None, ["eval.seqeval=s.json", f"eval.judge={judge}"])
    assert cfg.eval.judge.backend in ("hf", "http")


# --- backend http needs base_url -------------------------------------------------------

@pytest.mark.parametrize("section", ["augment.generator", "eval.judge"])
def test_http_without_base_url(section):
    msg = _problems([f"{section}.backend=http"])
    _one_line(msg, f"{section}.backend", f"{section}.base_url", "'http'", "None")


def test_http_without_base_url_in_both_generators_lists_both():
    msg = _problems(["augment.generator.backend=http", "eval.judge={backend: http}"])
    assert len(msg.splitlines()) == 2
    _one_line(msg, "augment.generator.base_url")
    _one_line(msg, "eval.judge.base_url")


def test_http_with_base_url_loads():
    cfg = load_config(None, ["augment.generator={backend: http, base_url: 'http://h:1/v1'}"])
    assert cfg.augment.generator.base_url == "http://h:1/v1"


# --- select floors x categories must fit the budget ------------------------------------

def test_floors_above_budget_all_testbed_categories():
    msg = _problems(["select.strategy=milp", "select.floor_per_category=50",
                     "select.budget=300"])
    line = _one_line(msg, "select.floor_per_category=50", "select.budget=300",
                     "pool.testbed.categories")
    assert "9 categories" in line and "450" in line


def test_floors_above_budget_listed_categories():
    msg = _problems(["select.strategy=milp", "select.floor_per_category=40",
                     "select.budget=100", "pool.testbed.categories=[add,upper,reverse]"])
    _one_line(msg, "select.floor_per_category=40", "select.budget=100", "120",
              "pool.testbed.categories=['add', 'upper', 'reverse']")


def test_floors_count_chain_and_tree_categories():
    base = ["select.strategy=milp", "select.floor_per_category=10", "select.budget=45",
            "pool.testbed.categories=[add,upper,reverse]"]
    load_config(None, base)  # 3 x 10 = 30 <= 45
    msg = _problems(base + ["pool.testbed.sequential_per_depth=10",
                            "pool.testbed.complex_per_level=10",
                            "pool.testbed.complex_nodes=[2,3]"])
    # 'sequential' has 40 rows, complex2/3 10 each; validation keeps half of the small ones
    _one_line(msg, "select.floor_per_category=10", "select.budget=45", "6 categories",
              "'sequential'", "'complex3'", "need 50")


def test_floors_capped_by_rows_left_after_probe_validation():
    # 40 rows a category, validation holds out min(30, 40 // 2) = 20: floors of 100 -> 20
    base = ["select.strategy=milp", "select.floor_per_category=100",
            "pool.testbed.categories=[add,upper,reverse]",
            "pool.testbed.items_per_category=40", "probes.valid_per_category=30"]
    load_config(None, base + ["select.budget=60"])
    _one_line(_problems(base + ["select.budget=59"]), "select.budget=59", "need 60")


@pytest.mark.parametrize("extra", [
    ["select.strategy=iid"],  # floors are read by milp only
    ["select.budget_unit=tokens"],  # tokens per item unknown before the pool stage
    ["pool.sources=[{path: data.jsonl}]"],  # categories of user files unknown before the pool
])
def test_floors_not_checked_when_unknown_or_unused(extra):
    base = ["select.strategy=milp", "select.floor_per_category=50", "select.budget=300"]
    load_config(None, base + extra)


def test_floors_checked_for_a_milp_compare_arm():
    msg = _problems(["select.strategy=iid", "compare.strategies=[iid,milp+curriculum]",
                     "select.floor_per_category=50", "select.budget=300"])
    _one_line(msg, "select.floor_per_category=50", "select.budget=300")


# --- select.robust needs >= 2 probe seeds ----------------------------------------------

def test_robust_with_one_probe_seed():
    msg = _problems(["select.strategy=milp", "select.robust=true", "probes.seeds=1"])
    _one_line(msg, "select.robust=true", "probes.seeds=1")


def test_robust_with_two_seeds_or_without_milp_loads():
    load_config(None, ["select.strategy=milp", "select.robust=true", "probes.seeds=2"])
    load_config(None, ["select.strategy=iid", "select.robust=true", "probes.seeds=1"])


# --- train.max_seq_len must fit the model's positions ----------------------------------

def test_max_seq_len_above_built_model_positions():
    msg = _problems(["model.max_positions=64", "train.max_seq_len=128"])
    _one_line(msg, "train.max_seq_len=128", "model.max_positions=64")
    load_config(None, ["model.max_positions=128", "train.max_seq_len=128"])


def test_max_seq_len_above_the_probes_proxy_positions():
    msg = _problems(["select.strategy=milp", "probes.model.max_positions=64",
                     "train.max_seq_len=128"])
    _one_line(msg, "train.max_seq_len=128", "probes.model.max_positions=64")
    # a proxy no strategy trains (no probes) is not checked
    load_config(None, ["select.strategy=iid", "compare.strategies=[iid]",
                       "probes.model.max_positions=64", "train.max_seq_len=128"])


@pytest.mark.parametrize("key", ["max_position_embeddings", "n_positions"])
def test_max_seq_len_above_local_hf_model_positions(tmp_path, key):
    (tmp_path / "config.json").write_text(json.dumps({key: 96, "model_type": "gpt2"}))
    msg = _problems([f"model.path={tmp_path}", "train.max_seq_len=128"])
    _one_line(msg, "train.max_seq_len=128", "model.path", str(tmp_path), f"{key}=96")
    load_config(None, [f"model.path={tmp_path}", "train.max_seq_len=96"])


def test_max_seq_len_not_checked_without_a_local_config(tmp_path):
    load_config(None, ["model.path=org/some-hub-model", "train.max_seq_len=100000"])
    load_config(None, [f"model.path={tmp_path}", "train.max_seq_len=100000"])
    (tmp_path / "config.json").write_text("{not json")
    load_config(None, [f"model.path={tmp_path}", "train.max_seq_len=100000"])


# --- together -----------------------------------------------------------------------------

def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("select: {strategy: milp, robust: true}\nprobes: {seeds: 1}\n"
                    "eval: {seqeval: s.json}\n")
    msg = _problems(["train.max_seq_len=512"], path)
    lines = msg.splitlines()
    assert len(lines) == 3 and all(line.startswith(str(path)) for line in lines)
    _one_line(msg, "select.robust")
    _one_line(msg, "eval.seqeval")
    _one_line(msg, "train.max_seq_len=512", "--set train.max_seq_len=512")


def test_checks_run_when_the_model_is_built_directly():
    with pytest.raises(ValueError, match="train.max_seq_len"):
        RunConfig.model_validate({"train": {"max_seq_len": 1024}})
