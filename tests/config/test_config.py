import subprocess
import sys

import pytest

from instructmix.config import ConfigError, RunConfig, json_schema, load_config


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 2\n")
    cfg = load_config(path, ["train.zero_stage=3", "select.budget=10",
                             "pool.testbed.categories=[add,upper]"])
    assert cfg.train.epochs == 2 and cfg.train.zero_stage == 3 and cfg.select.budget == 10
    assert cfg.pool.testbed.categories == ["add", "upper"]


@pytest.mark.parametrize("override, field", [
    ("train.zero_stage=5", "train.zero_stage"),
    ("train.epocs=2", "train.epocs"),
    ("model.n_embd=130", "model"),
    ("select.budget=-1", "select.budget"),
    ("pool.sources=[{format: alpaca}]", "pool.sources.0.path"),
])
def test_invalid_config_names_the_field(override, field):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert field in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["train.epochs"])


def test_schema_lists_every_section():
    schema = json_schema()
    for name, field in RunConfig.model_fields.items():
        assert f'"{field.alias or name}"' in schema


def test_cli_rejects_bad_config_before_ray(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  zero_stage: 7\n")
    proc = subprocess.run([sys.executable, "-m", "instructmix.cli", "run", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "train.zero_stage" in proc.stderr
    assert "Traceback" not in proc.stderr and "ray" not in proc.stderr.lower()


def test_cli_prints_schema():
    proc = subprocess.run([sys.executable, "-m", "instructmix.cli", "schema"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and '"TrainConfig"' in proc.stdout


def test_an_existing_relative_model_path_is_made_absolute(tmp_path, monkeypatch):
    """Tune trials run in their own directories: a relative local path must not reach them
    as such (it would be read as a hub id)."""
    from instructmix.config import ModelConfig

    (tmp_path / "models" / "m").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert ModelConfig(path="models/m").path == str(tmp_path / "models" / "m")
    assert ModelConfig(path="org/hub-id").path == "org/hub-id"
