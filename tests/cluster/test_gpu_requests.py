"""GPUs for trials and stages: what a trial asks Ray for, the device it trains on, and a
local run that asks for GPUs it cannot have failing before the first stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from instructmix.cluster.sweep import concurrent_trials, per_trial, trial_device
from instructmix.config import RunConfig

REPO = Path(__file__).resolve().parents[2]


def test_trials_at_once_are_bounded_by_every_resource_the_cluster_has():
    assert concurrent_trials({"CPU": 8.0, "GPU": 2.0}, per_trial(1, 1)) == 2
    assert concurrent_trials({"CPU": 8.0, "GPU": 2.0}, per_trial(1, 0.5)) == 4
    assert concurrent_trials({"CPU": 8.0, "GPU": 2.0}, per_trial(4, 0.25)) == 2
    assert concurrent_trials({"CPU": 8.0}, per_trial(1, 0)) == 8
    assert concurrent_trials({"CPU": 2.0}, per_trial(4, 0)) == 1
    # no GPU yet (an autoscaler adds them on demand): the CPUs bound it
    assert concurrent_trials({"CPU": 8.0}, per_trial(2, 1)) == 4
    assert per_trial(1, 0) == {"cpu": 1}


def test_a_trial_trains_on_the_gpu_ray_gave_it():
    assert trial_device([], cuda_available=True) == "cpu"
    assert trial_device(["3"], cuda_available=True) == "cuda"  # CUDA_VISIBLE_DEVICES=3
    with pytest.raises(RuntimeError, match="GPU 3 but torch sees no CUDA device"):
        trial_device(["3"], cuda_available=False)


def test_gpu_requests_name_the_fields_of_the_stages_that_run(tmp_path):
    base = {"run_dir": str(tmp_path), "pool": {"testbed": {}}}
    assert RunConfig.model_validate(base).gpu_requests == []
    cfg = RunConfig.model_validate(dict(
        base, train={"use_gpu": True}, probes={"gpus_per_trial": 0.5},
        compare={"strategies": ["iid"], "gpus_per_trial": 1},
        select={"strategy": "milp"}))
    assert cfg.gpu_requests == ["train.use_gpu", "probes.gpus_per_trial",
                                "compare.gpus_per_trial"]
    # no compare arms and no RAISE: their GPU fields ask for nothing
    idle = RunConfig.model_validate(dict(base, compare={"strategies": [], "gpus_per_trial": 1},
                                         **{"raise": {"gpus_per_episode": 1}}))
    assert idle.gpu_requests == []


def test_a_trial_asks_for_at_most_one_gpu(tmp_path):
    with pytest.raises(ValidationError, match="probes.gpus_per_trial"):
        RunConfig.model_validate({"run_dir": str(tmp_path), "pool": {"testbed": {}},
                                  "probes": {"gpus_per_trial": 2}})


def test_tune_gives_each_trial_its_share_of_a_gpu_and_the_trial_uses_it(tmp_path):
    """Real Tune trials on a Ray instance with one (logical) GPU: two trials of half a GPU
    run side by side, each with GPU 0 visible; with no CUDA here, the trial's device choice
    says so instead of training on CPU unnoticed."""
    out = subprocess.run([sys.executable, "-m", "tests.cluster.gpu_trials", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["resources"] == {"cpu": 0.5, "gpu": 0.5} and got["failed"] == []
    assert got["concurrent"] == 2
    assert set(got["trials"]) == {"a", "b"}
    for trial in got["trials"].values():
        assert json.loads(trial["gpu_ids"]) == ["0"]
        assert trial["cuda_visible_devices"] == "0"
        if torch.cuda.is_available():
            assert trial["device"] == "cuda"
        else:
            assert trial["device"].startswith("error: Ray gave this trial GPU 0 but torch")
    # the probes' own trainable asks for its device the same way: no CUDA fails the trial
    if not torch.cuda.is_available():
        assert got["probe"]["done"] == 0
        assert len(got["probe"]["errors"]) == 1
        assert "Ray gave this trial GPU 0 but torch sees no CUDA" in got["probe"]["errors"][0]


def test_a_local_run_asking_for_gpus_fails_before_the_first_stage(tmp_path):
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "instructmix.cli", "run", str(REPO / "configs" / "demo.yaml"),
         "--set", f"run_dir={run_dir}", "--set", "probes.gpus_per_trial=1",
         "--set", "eval.use_gpu=true"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    error = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert error == ["error: eval.use_gpu, probes.gpus_per_trial: this local Ray instance "
                     "has no GPU (set them to 0 / false to run on CPU)"], out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert not (run_dir / "pool").exists()  # the pool stage did not start
