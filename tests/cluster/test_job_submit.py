"""`ray job submit --working-dir . -- instructmix run CONFIG` against `ray start --head` of its
own, with token authentication: a submission without the token, or with a wrong one, is
refused."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.cluster.watched_run import ray_token
from tests.conftest import REPO
from tests.processes import free_port, listening, stop_group, wait_for

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _ray(env, *args, timeout=600):
    return subprocess.run([str(BIN / "ray"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _wait_until_up(env, gcs: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start --head exited with {proc.returncode}")
        if _ray(env, "status", f"--address=127.0.0.1:{gcs}", timeout=60).returncode == 0:
            return
        time.sleep(2)
    raise TimeoutError("the Ray head did not come up")


@pytest.fixture
def head_node(tmp_path):
    """A Ray head of its own (`ray start --head --block` in a new process group), stopped by
    killing that group: other Ray instances on the machine are left alone."""
    if not (BIN / "ray").exists():
        pytest.skip("the ray CLI is not installed next to this Python")
    # every port of its own: the session's local Ray instance (other tests) holds the
    # default agent ports, and a head whose agent cannot bind accepts no job
    gcs, dash, *agent = (free_port() for _ in range(7))
    temp = tempfile.mkdtemp(prefix="imray", dir="/tmp")  # unix socket paths must stay short
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", RAY_AUTH_MODE="token",
               HF_HUB_OFFLINE="1")
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}",
         f"--dashboard-port={dash}", f"--dashboard-agent-listen-port={agent[0]}",
         f"--dashboard-agent-grpc-port={agent[1]}", f"--runtime-env-agent-port={agent[2]}",
         f"--metrics-export-port={agent[3]}", f"--ray-client-server-port={agent[4]}",
         "--num-cpus=2", "--include-dashboard=true",
         "--disable-usage-stats", f"--temp-dir={temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until_up(env, gcs, proc)
        wait_for(lambda: listening(dash), 180, f"the dashboard on port {dash}", proc, every=2)
        yield env, f"http://127.0.0.1:{dash}"
    finally:
        stop_group(proc, wait=10)
        shutil.rmtree(temp, ignore_errors=True)


def _refused(env, dashboard: str) -> dict[str, object]:
    """What the job API answers to submissions without the right token: the REST API's
    status without a token and with a wrong one; whether `ray job submit` with a wrong
    token fails as forbidden."""
    import httpx

    body = {"entrypoint": "echo refused-submission"}
    url = f"{dashboard}/api/jobs/"
    cli = _ray(dict(env, RAY_ADDRESS=dashboard, RAY_AUTH_TOKEN="not-the-token"), "job",
               "submit", "--", "echo", "refused-submission", timeout=120)
    return {"none": httpx.post(url, json=body, timeout=30).status_code,
            "wrong": httpx.post(url, json=body, timeout=30,
                                headers={"Authorization": "Bearer not-the-token"}).status_code,
            "cli": cli.returncode != 0 and "Forbidden" in cli.stdout + cli.stderr}


def _submitted(dashboard: str) -> list[str]:
    import httpx

    jobs = httpx.get(f"{dashboard}/api/jobs/", timeout=30,
                     headers={"Authorization": f"Bearer {ray_token()}"}).json()
    return [job["entrypoint"] for job in jobs if job["type"] == "SUBMISSION"]


def test_job_submit_needs_the_token_and_runs_the_pipeline(head_node, tmp_path):
    env, dashboard = head_node
    assert _refused(env, dashboard) == {"none": 401, "wrong": 403, "cli": True}
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
    for _ in range(24):  # the head's job agent registers a little after `ray status` is up
        proc = _ray(dict(env, RAY_ADDRESS=dashboard), "job", "submit", "--working-dir",
                    str(REPO), "--", "instructmix", "run", str(cfg), timeout=900)
        if "No available agent to submit job" not in proc.stdout + proc.stderr:
            break
        time.sleep(5)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "succeeded" in (proc.stdout + proc.stderr).lower()
    report = json.loads((run_dir / "report" / "report.json").read_text())
    assert report["eval"]["results"]["per_category"]
    assert _submitted(dashboard) == [f"instructmix run {cfg}"]  # the refused ones left none
    shutil.rmtree(run_dir)
