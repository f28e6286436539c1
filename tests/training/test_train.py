"""Ray Train + DeepSpeed on 2 CPU workers (gloo): ZeRO-2/3, export, order. Resuming after a
failure: tests/cluster/test_kills.py (SIGKILL) and tests/storage/test_s3_run.py."""

import json
import shutil
import time

import pyarrow.parquet as pq
import pytest
import torch
from ray._private import state as ray_state
from transformers import AutoModelForCausalLM

from instructmix.pipeline import BY_NAME, run_all, run_stage
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prepared(ray_local, tmp_path_factory):
    """pool -> model -> select (-> augment, skipped) once; each test copies it and trains."""
    base = tmp_path_factory.mktemp("prepared")
    run_all(tiny_config(base), stop_after="augment")  # augment: skipped (plain)
    return base


def _console_is_clean(capfd) -> None:
    """What the workers sent to this console during the stage (Ray forwards their lines a
    little later): each logged step once; no warning that the state API is missing, or that
    GPT-2's loss is unnamed."""
    text = ""
    deadline = time.time() + 30
    while "train: step 6/6" not in text and time.time() < deadline:
        time.sleep(0.5)
        text += "".join(capfd.readouterr())
    assert [text.count(f"train: step {s}/6 ") for s in (2, 4, 6)] == [1, 1, 1], text[-3000:]
    assert "Failed to query Ray Train Controller" not in text
    assert "loss_type=None" not in text


def _copy(prepared, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(prepared, dst)
    return dst


@pytest.mark.parametrize("stage, precision", [(2, "fp32"), (3, "bf16")])
def test_zero_stage_on_two_cpu_workers(prepared, tmp_path, capfd, stage, precision):
    run_dir = _copy(prepared, tmp_path)
    cfg = tiny_config(run_dir, train={"zero_stage": stage, "precision": precision,
                                      "log_batch_ids": True})
    summary = run_stage(cfg, BY_NAME["train"])["summary"]
    _console_is_clean(capfd)
    assert summary["steps"] == 6 and summary["resumed_from"] == []
    history = json.loads((run_dir / "train" / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4, 6]
    assert all(h["loss"] > 0 and h["tokens_per_s"] > 0 for h in history)
    # both ranks wrote their ZeRO partitions into the same checkpoint
    ckpts = sorted((run_dir / "train" / "ray_results" / "sft").glob("checkpoint_*/ckpt"))
    names = [p.name for p in ckpts[-1].iterdir()] if ckpts else []
    for rank in (0, 1):  # (bf16 runs prefix the names with "bf16_")
        assert any(f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt" in n for n in names), names
    # the HF export is complete (ZeRO-3 gathers partitioned weights) and loads
    model_dir = run_dir / "train" / "model"
    assert (model_dir / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert all(torch.isfinite(p).all() and p.numel() > 0 for p in model.parameters())
    # training consumed the selection in the order the select stage wrote, batch by batch
    order = pq.read_table(run_dir / "select" / "train.parquet").column("id").to_pylist()
    seen = json.loads((run_dir / "train" / "batch_ids.json").read_text())
    assert [i for batch in seen for i in batch] == order[: 6 * 8 * 2]
    # the stage released Ray Train's controller and dataset actors (read from the GCS: the
    # public state API needs the dashboard, which the test instance does not start)
    alive = [a["ActorClassName"] for a in ray_state.actors().values() if a["State"] == "ALIVE"]
    assert not [a for a in alive if "TrainController" in a or "DatasetManager" in a], alive
