"""Training settings of comparison arms: augmented arms take the plain arm's steps."""

from instructmix.evaluation.compare import trial_train

from .conftest import tiny_config


def _steps(tc: dict, rows: int) -> int:
    return rows // tc["micro_batch_size"] * tc["epochs"]


def test_augmented_arm_batch_is_scaled_to_equal_steps(tmp_path):
    cfg = tiny_config(tmp_path, train={"micro_batch_size": 16, "num_workers": 2, "epochs": 5,
                                       "max_steps": None})
    plain = trial_train(cfg)
    assert plain["micro_batch_size"] == 32 and plain["num_workers"] == 1  # one process
    selected, augmented = 4000, 2350  # SIT: fewer, longer rows at equal tokens
    sit = trial_train(cfg, augmented, selected)
    assert sit["micro_batch_size"] == round(32 * augmented / selected) == 19
    assert abs(_steps(sit, augmented) - _steps(plain, selected)) <= 0.02 * _steps(plain, selected)
    # off: the arm keeps the row batch, so it takes ~40% fewer steps
    cfg = tiny_config(tmp_path, train={"micro_batch_size": 16, "num_workers": 2, "epochs": 5,
                                       "max_steps": None}, compare={"equal_steps": False})
    assert trial_train(cfg, augmented, selected)["micro_batch_size"] == 32
    assert trial_train(cfg, 1, 4000)["micro_batch_size"] == 32
    # a tiny augmented set never gets an empty batch
    cfg = tiny_config(tmp_path)
    assert trial_train(cfg, 1, 4000)["micro_batch_size"] == 1
