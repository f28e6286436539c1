"""load_config: shipped configs, overrides, removed and unknown keys, one line per problem."""

from pathlib import Path

import pytest

from instructmix.config import REMOVED, ConfigError, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    assert {"demo.yaml", "cluster.yaml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert Path(cfg.run_dir).is_absolute()


@pytest.mark.parametrize("key, value, env", [
    ("train.fail_at_step", "4", "INSTRUCTMIX_FAIL_AT_STEP"),
    ("probes.fail_trial", "base-s1", "INSTRUCTMIX_FAIL_TRIAL"),
])
def test_removed_fault_hooks_are_rejected_with_the_field_named(tmp_path, key, value, env):
    section, field = key.split(".")
    path = tmp_path / "old.yaml"
    path.write_text(f"{section}:\n  {field}: {value}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    line = str(e.value)
    assert len(line.splitlines()) == 1
    assert str(path) in line and key in line and env in line and value in line
    assert key in REMOVED


def test_unknown_key_suggests_a_close_one():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["select.floor=3"])
    assert "select.floor" in str(e.value) and "floor_per_category" in str(e.value)


def test_each_problem_names_file_path_and_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  zero_stage: 7\n  max_seq_len: 4\nselect:\n  strategy: best\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = str(e.value).splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{path}: ") for line in lines)
    for field, value in [("train.zero_stage", "7"), ("train.max_seq_len", "4"),
                         ("select.strategy", "'best'")]:
        assert any(f": {field}: " in line and f"(got {value})" in line for line in lines)


def test_override_is_named_as_the_origin():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.zero_stage=5"])
    assert str(e.value).startswith("--set train.zero_stage=5: train.zero_stage: ")


def test_overrides_apply_over_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("select:\n  budget: 100\n  strategy: milp\ntrain:\n  epochs: 2\n")
    cfg = load_config(path, ["select.budget=50", "train.lr=1e-4", "augment.sit.max_depth=3",
                             "compare.strategies=[iid, milp+curriculum]", "eval.seqeval=",
                             "model.path=null"])
    assert (cfg.select.budget, cfg.select.strategy, cfg.train.epochs) == (50, "milp", 2)
    assert cfg.train.lr == 1e-4 and cfg.augment.sit.max_depth == 3
    assert cfg.compare.strategies == ["iid", "milp+curriculum"]
    assert cfg.eval.seqeval == "" and cfg.model.path is None


@pytest.mark.parametrize("assignment, message", [
    ("train.epochs", "KEY=VALUE"),
    ("train..epochs=2", "dotted path"),
    ("train.epochs.x=2", "not a section"),
])
def test_bad_overrides(assignment, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["train.epochs=2", assignment])


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
