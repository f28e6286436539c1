"""`ray job submit --working-dir . -- instructmix run CONFIG` against `ray start --head`."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(env, *args, timeout=600):
    return subprocess.run([str(BIN / "ray"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def head_node(tmp_path):
    if not (BIN / "ray").exists():
        pytest.skip("the ray CLI is not installed next to this Python")
    gcs, dash = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="imray", dir="/tmp")  # unix socket paths must stay short
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", RAY_AUTH_MODE="token",
               HF_HUB_OFFLINE="1")
    env.pop("RAY_ADDRESS", None)
    start = _ray(env, "start", "--head", f"--port={gcs}", f"--dashboard-port={dash}",
                 "--num-cpus=2", "--include-dashboard=true", "--disable-usage-stats",
                 f"--temp-dir={temp}")
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        yield env, f"http://127.0.0.1:{dash}"
    finally:
        _ray(env, "stop", "--force", timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_job_submit_runs_the_pipeline(head_node, tmp_path):
    env, dashboard = head_node
    run_dir = tmp_path / "job_run"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        f"run_dir: {run_dir}\n"
        "pool: {testbed: {items_per_category: 30, eval_per_category: 3}}\n"
        "model: {n_layer: 1, n_embd: 32, n_head: 2, max_positions: 64}\n"
        "select: {budget: 160}\n"
        "train: {micro_batch_size: 8, epochs: 1, max_steps: 4, checkpoint_every: 4,"
        " max_seq_len: 64}\n"
        "eval: {max_new_tokens: 4}\n")
    proc = _ray(dict(env, RAY_ADDRESS=dashboard), "job", "submit", "--working-dir", str(REPO),
                "--", "instructmix", "run", str(cfg), timeout=900)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "succeeded" in (proc.stdout + proc.stderr).lower()
    report = json.loads((run_dir / "report" / "report.json").read_text())
    assert report["eval"]["results"]["per_category"]
    shutil.rmtree(run_dir)
