"""A Ray Tune sweep of a remote run writes its experiment to the bucket and, rerun in a
new driver, restores it from there and runs only the failed trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.storage.conftest import bucket_files

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _sweep(uri: str, env: dict, **extra) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "FAIL_B")}
    full.update(env, **extra)
    out = subprocess.run([sys.executable, "-m", "tests.storage.sweep_on_s3", uri], cwd=REPO,
                         env=full, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"log": out.stderr}


def test_tune_experiment_lives_in_the_bucket_and_resumes(s3_env, bucket):
    uri = f"s3://{bucket}/run"
    first = _sweep(uri, s3_env, FAIL_B="1")
    assert first["done"] == ["a"] and first["failed"] == ["b"]
    keys = set(bucket_files(bucket, "run/probe/tune/probes/"))
    assert any("experiment_state" in k for k in keys), sorted(keys)
    assert any(k.endswith("/result.json") for k in keys), sorted(keys)
    second = _sweep(uri, s3_env)
    assert second["done"] == ["a", "b"] and not second["failed"]
    assert "restoring the Tune experiment" in second["log"]


def test_trials_on_a_node_without_the_drivers_mirror_read_and_write_through_the_bucket(
        s3_env, bucket, tmp_path):
    uri = f"s3://{bucket}/run"
    node_mirror = tmp_path / "node-mirror"
    full = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | s3_env
    out = subprocess.run([sys.executable, "-m", "tests.storage.trial_files_on_s3", uri,
                          str(node_mirror)], cwd=REPO, env=full, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert not result["failed"] and sorted(result["done"]) == ["a", "b"]
    node_run = node_mirror / "s3" / bucket / "run"
    for name, seen in result["done"].items():  # the trials ran on the node's own copies
        assert seen["paths"] == [str(node_run / "probe" / "sets" / f"{name}.txt"),
                                 str(node_run / "model"), str(node_run / "probe" / "out" /
                                                              f"{name}.txt")]
        assert seen["folder_files"] == ["config.json", "weights.bin"]
    # what they wrote is in the bucket and, fetched, in the driver's mirror
    assert result["outputs"] == {"a": "set a trained", "b": "set b trained"}
    keys = bucket_files(bucket, "run/")
    assert keys["run/probe/out/a.txt"] == b"set a trained"
    assert keys["run/model/weights.bin"] == (node_run / "model" / "weights.bin").read_bytes()
    assert "files the trials read sent to the bucket" in out.stderr
