"""Training settings of comparison arms: augmented arms take the plain arm's steps."""

import pytest

from instructmix.experiments.compare import trial_train
from tests.conftest import tiny_config


def _steps(tc, rows: int) -> int:
    return rows // tc.micro_batch_size * tc.epochs


def test_augmented_arm_batch_is_scaled_to_equal_steps(tmp_path):
    cfg = tiny_config(tmp_path, train={"micro_batch_size": 16, "num_workers": 2, "epochs": 5,
                                       "max_steps": None})
    plain = trial_train(cfg)
    assert plain.micro_batch_size == 32 and plain.num_workers == 1  # one process
    selected, augmented = 4000, 2350  # SIT: fewer, longer rows at equal tokens
    sit = trial_train(cfg, augmented, selected)
    assert sit.micro_batch_size == round(32 * augmented / selected) == 19
    assert abs(_steps(sit, augmented) - _steps(plain, selected)) <= 0.02 * _steps(plain, selected)
    # off: the arm keeps the row batch, so it takes ~40% fewer steps
    cfg = tiny_config(tmp_path, train={"micro_batch_size": 16, "num_workers": 2, "epochs": 5,
                                       "max_steps": None}, compare={"equal_steps": False})
    assert trial_train(cfg, augmented, selected).micro_batch_size == 32
    assert trial_train(cfg, 1, 4000).micro_batch_size == 32
    # a tiny augmented set never gets an empty batch
    cfg = tiny_config(tmp_path)
    assert trial_train(cfg, 1, 4000).micro_batch_size == 1


def test_aggregate_and_table_keep_token_accuracy():
    from instructmix.experiments.table import aggregate, markdown_table

    def cell(seed, em, acc):
        return {"strategy": "iid", "seed": seed, "counts": {"a": 3, "b": 2},
                "exact_match": {"a": em, "b": None}, "token_accuracy": {"a": acc, "b": 0.5},
                "loss": {"a": 1.0, "b": 2.0}, "train_tokens": 100, "steps": 4}

    agg = aggregate([cell(0, 0.2, 0.6), cell(1, 0.4, 0.8)])["iid"]
    assert agg["token_accuracy"]["a"]["mean"] == pytest.approx(0.7)
    assert agg["token_accuracy"]["b"]["std"] == 0
    assert agg["macro_token_accuracy"]["mean"] == pytest.approx(0.6)
    assert agg["exact_match"]["b"] is None
    assert agg["macro_exact_match"]["mean"] == pytest.approx(0.3)
    table = markdown_table({"iid": agg})
    assert "| token accuracy, a | 0.70 ± 0.14 |" in table
    assert "| **token accuracy, macro** | **0.600 ± 0.071** |" in table
    assert "| b | n/a |" in table and "| **macro** | **0.300 ± 0.141** |" in table


def test_in_process_overrides_are_validated(tmp_path):
    """A misspelt or mistyped training setting fails by name instead of being ignored."""
    from pydantic import ValidationError

    from instructmix.experiments.trial import TrialSpec, in_process

    tc = tiny_config(tmp_path).train
    with pytest.raises(ValidationError, match="micro_batchsize"):
        in_process(tc, micro_batchsize=4)
    with pytest.raises(ValidationError, match="epochs"):
        in_process(tc, epochs="many")
    spec = TrialSpec("a", 0, "t.parquet", "e.parquet", "m", in_process(tc, epochs=2))
    assert TrialSpec.from_dict(spec.to_dict()) == spec
    bad = dict(spec.to_dict(), train=dict(spec.to_dict()["train"], lr="fast"))
    with pytest.raises(ValidationError, match="lr"):
        TrialSpec.from_dict(bad)


def _cell(arm: str, seed: int, em: float) -> dict:
    return {"strategy": arm, "seed": seed, "exact_match": {"a": em, "b": em},
            "token_accuracy": {"a": em}}


def test_paired_differences_and_their_t_interval():
    from instructmix.experiments.table import paired_differences, paired_table, verdicts

    iid = [0.10, 0.20, 0.30]
    cells = [_cell("iid", s, v) for s, v in enumerate(iid)]
    for arm, deltas in (("good", (0.10, 0.12, 0.14)), ("same", (0.1, -0.1, 0.0))):
        cells += [_cell(arm, s, v + d) for s, (v, d) in enumerate(zip(iid, deltas, strict=True))]
    cells += [_cell("one", 0, 0.5)]
    paired = paired_differences(cells, "iid")
    good = paired["good"]
    # mean 0.12, sd 0.02, t(0.975, 2) = 4.303: half-width 4.303 * 0.02 / sqrt(3) = 0.0497
    assert good["differences"] == pytest.approx([0.10, 0.12, 0.14])
    assert good["mean"] == pytest.approx(0.12)
    assert (good["lo"], good["hi"]) == pytest.approx((0.12 - 0.04969, 0.12 + 0.04969), abs=1e-4)
    assert good["beats"] and not good["loses"]
    assert not paired["same"]["beats"] and not paired["same"]["loses"]
    # a single seed has no interval: never "beats"
    assert paired["one"]["lo"] == float("-inf") and not paired["one"]["beats"]
    text = paired_table(paired, "iid")
    assert "| good | +0.100, +0.120, +0.140 | +0.120 |" in text and "beats iid" in text
    said = verdicts(paired, "iid").splitlines()
    assert said[0] == ("good − iid, macro exact match: +0.120 [+0.070, +0.170] over 3 seeds: "
                       "beats iid.")
    assert said[1].startswith("same − iid, macro exact match: +0.000 [-0.248, +0.248] over 3 "
                              "seeds: not shown to beat iid: the interval contains 0 (its "
                              "half-width 0.248")
    assert "one seed gives no interval" in said[2]
