"""The `raise` section (field `raise_`, a Python keyword otherwise), its cross-field check
and the strategies that pick batches while training."""

from __future__ import annotations

import pytest

from instructmix.config import (
    PICKED,
    STRATEGIES,
    ConfigError,
    RaiseConfig,
    RunConfig,
    load_config,
)


def _problems(overrides, path=None) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    return str(e.value)


def test_raise_key_validates_dumps_and_round_trips(tmp_path):
    cfg = RunConfig.model_validate({"run_dir": str(tmp_path),
                                    "raise": {"rounds": 2, "clusters": "categories",
                                              "stage_features": False, "lr": 1e-3}})
    assert isinstance(cfg.raise_, RaiseConfig)
    assert (cfg.raise_.rounds, cfg.raise_.clusters) == (2, "categories")
    assert cfg.raise_.stage_features is False and cfg.raise_.lr == 1e-3
    dumped = cfg.model_dump()
    assert "raise" in dumped and "raise_" not in dumped
    assert dumped["raise"]["rounds"] == 2
    assert '"raise":' in cfg.model_dump_json() and '"raise_"' not in cfg.model_dump_json()
    back = RunConfig.model_validate_json(cfg.model_dump_json())
    assert back == cfg and back.raise_.clusters == "categories"
    assert RunConfig.model_validate(dumped) == cfg


def test_default_config_round_trips_through_json():
    cfg = RunConfig.model_validate({"raise": {"rounds": 2}})
    assert RunConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_raise_section_from_a_yaml_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("select:\n  strategy: raise\nraise:\n  clusters: 4\n  episode_steps: 7\n")
    cfg = load_config(path, ["raise.rounds=5"])
    assert (cfg.raise_.clusters, cfg.raise_.episode_steps, cfg.raise_.rounds) == (4, 7, 5)
    assert cfg.uses_raise and cfg.held_out
    assert RaiseConfig().clusters == 8 and RunConfig().raise_ == RaiseConfig()


def test_unknown_key_under_raise_names_it(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("raise:\n  roundz: 3\n")
    msg = _problems([], path)
    assert len(msg.splitlines()) == 1
    assert msg.startswith(f"{path}: ") and "raise.roundz" in msg and "unknown key" in msg


def test_unknown_key_under_raise_suggests_a_close_one():
    msg = _problems(["raise.round=3"])
    assert "raise.round" in msg and "did you mean 'rounds'?" in msg


def test_misspelt_raise_section_suggests_raise():
    msg = _problems(["rase.rounds=3"])
    assert "did you mean 'raise'?" in msg


def test_clusters_not_dividing_the_global_batch():
    msg = _problems(["select.strategy=raise", "raise.clusters=5", "train.micro_batch_size=8",
                     "train.num_workers=2"])
    lines = msg.splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert "raise.clusters, train.micro_batch_size, train.num_workers:" in line
    assert "raise.clusters=5" in line and "= 16" in line
    assert "--set raise.clusters=5" in line  # the override is named as the origin


def test_clusters_checked_for_a_raise_compare_arm_only():
    msg = _problems(["compare.strategies=[iid, raise]", "raise.clusters=3"])
    assert "raise.clusters=3" in msg and "64" in msg  # default batch: 32 x 2
    cfg = load_config(None, ["compare.strategies=[iid, selfpaced]", "raise.clusters=3"])
    assert not cfg.uses_raise  # RAISE does not run: its clusters are not checked


@pytest.mark.parametrize("overrides", [
    ["select.strategy=raise", "raise.clusters=categories"],
    ["select.strategy=raise", "raise.clusters=categories", "train.micro_batch_size=7"],
    ["select.strategy=raise", "raise.clusters=4", "train.micro_batch_size=6"],  # 12 / 4
    ["select.strategy=raise", "raise.clusters=12", "train.micro_batch_size=6"],
])
def test_clusters_that_fit_load(overrides):
    cfg = load_config(None, overrides)
    assert cfg.uses_raise


@pytest.mark.parametrize("clusters", ["0", "-4"])
def test_clusters_below_one_are_refused(clusters):
    msg = _problems(["select.strategy=raise", f"raise.clusters={clusters}"])
    assert "raise.clusters" in msg


@pytest.mark.parametrize("value", ["'none'", "2.5"])
def test_clusters_must_be_a_count_or_categories(value):
    assert "raise.clusters" in _problems([f"raise.clusters={value}"])


@pytest.mark.parametrize("arms, held", [
    ([], False),
    (["iid"], False),
    (["full", "ifd"], False),
    (["iid", "selfpaced"], True),
    (["raise"], True),
    (["milp"], True),  # the probes hold rows out to score themselves
])
def test_held_out(arms, held):
    cfg = RunConfig.model_validate({"compare": {"strategies": arms}})
    assert cfg.held_out is held
    assert cfg.uses_raise is ("raise" in arms)


def test_picked_select_strategy_holds_rows_out():
    for strategy in PICKED:
        assert RunConfig.model_validate({"select": {"strategy": strategy}}).held_out
    assert not RunConfig.model_validate({"select": {"strategy": "ifd"}}).held_out


def test_compare_accepts_the_new_arms():
    assert {"full", "ifd", "selfpaced", "raise"} <= set(STRATEGIES)
    assert set(PICKED) == {"selfpaced", "raise"}
    cfg = load_config(None, ["compare.strategies=[full, ifd, selfpaced, raise, iid]"])
    assert cfg.compare.strategies == ["full", "ifd", "selfpaced", "raise", "iid"]
    assert cfg.arms == ["iid", "full", "ifd", "selfpaced", "raise", "iid"]
    for strategy in ("full", "ifd", "selfpaced", "raise"):
        assert load_config(None, [f"select.strategy={strategy}"]).select.strategy == strategy


def test_compare_refuses_an_unknown_arm():
    msg = _problems(["compare.strategies=[raise, rl]"])
    assert "compare.strategies" in msg and "'rl'" in msg
