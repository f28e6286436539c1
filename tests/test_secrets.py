"""Secrets come only from the environment and reach no artifact, log, report or dashboard
answer: a run whose HTTP generator sends OPENAI_API_KEY=<sentinel> to a real chat server is
searched for the sentinel everywhere it wrote."""

from __future__ import annotations

import json
import re

import pytest

from instructmix import runtime
from tests.cluster.watched_run import SENTINEL, ray_token, watched_run

SECRETS = ("OPENAI_API_KEY", "HF_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
           "AWS_SESSION_TOKEN", "RAY_AUTH_TOKEN")
SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|SECRET|PASSWORD)(_|$)")


@pytest.fixture(scope="module")
def run():
    run = watched_run()
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _files_holding(root, needle: str) -> list[str]:
    return [str(p) for p in sorted(root.rglob("*"))
            if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.mark.slow
def test_the_key_is_sent_to_the_endpoint(run):
    assert run.keys_received, "the HTTP generator made no request"
    assert set(run.keys_received) == {f"Bearer {SENTINEL}"}


@pytest.mark.slow
def test_the_key_is_in_no_artifact_log_or_dashboard_answer(run):
    assert (run.run_dir / "report" / "report.html").is_file()
    assert (run.run_dir / "probe" / "tune").is_dir()
    assert list(run.ray_dir.glob("session_*/logs/*"))  # Ray's own logs of this run
    assert _files_holding(run.run_dir, SENTINEL) == []
    assert _files_holding(run.ray_dir, SENTINEL) == []
    assert SENTINEL not in run.stdout and SENTINEL not in run.stderr
    assert SENTINEL not in json.dumps(run.polls)  # job table, actors, tasks


@pytest.mark.slow
def test_the_ray_token_is_in_no_artifact_or_driver_output(run):
    token = ray_token()
    assert _files_holding(run.run_dir, token) == []
    assert token not in run.stdout and token not in run.stderr


@pytest.mark.slow
def test_the_jobs_runtime_env_holds_the_worker_env_and_no_secret(run):
    """The dashboard's job table shows the runtime env every worker gets."""
    (job,) = [j for j in run.polls["/api/jobs/"][-1] if j["driver_info"]["pid"] == str(run.pid)]
    names = set(job["runtime_env"]["env_vars"])
    assert names >= set(runtime.DEFAULTS)
    assert not {n for n in names if SECRET_NAME.search(n)}


def test_worker_env_forwards_no_secret(monkeypatch):
    for name in SECRETS:
        monkeypatch.setenv(name, SENTINEL)
    monkeypatch.setenv(runtime.FAIL_TRIAL, "base-s0")
    env = runtime.worker_env()
    assert runtime.FAIL_TRIAL in env
    assert not {n for n in env if SECRET_NAME.search(n)}
    assert SENTINEL not in json.dumps(env)
