"""Probe trials take `probes.lora`, never `train.lora`; compare arms take `train.lora`."""

from instructmix.experiments.probe_stage import probe_train
from instructmix.experiments.trial import TrialSpec, in_process
from tests.conftest import tiny_config


def test_probes_use_their_own_lora_setting(tmp_path):
    lora = {"rank": 4, "alpha": 8, "target_modules": ["q_proj"]}
    cfg = tiny_config(tmp_path, train={"lora": {"rank": 16}}, probes={"lora": lora})
    assert probe_train(cfg).lora.model_dump() == dict(lora, dropout=0.0)
    assert probe_train(tiny_config(tmp_path, train={"lora": {"rank": 16}})).lora is None
    assert in_process(cfg.train).lora.rank == 16  # what compare arms and episodes train
    # the setting survives Tune's plain-dict round trip of a trial's spec
    spec = TrialSpec("t", 0, "a.parquet", "b.parquet", "m", probe_train(cfg))
    assert TrialSpec.from_dict(spec.to_dict()).train.lora.target_modules == ["q_proj"]
