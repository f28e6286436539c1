"""A whole run on object storage (the moto server) and a simulated cluster of three nodes
whose disks are not the driver's (their INSTRUCTMIX_MIRROR is another folder): the pool
read from the bucket, every artifact, Ray Train's checkpoints and the report written there,
and a run interrupted in train resumed on a machine without the local mirror."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from instructmix import storage
from instructmix.runtime import FAIL_AT_STEP
from tests.cluster.sim_cluster import SimCluster
from tests.conftest import tiny_config
from tests.storage.conftest import SECRET, bucket_files

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
CATEGORIES = ["reverse", "upper", "add"]


def _upload_pool(bucket: str) -> None:
    """The pool and its eval set as Alpaca JSONL objects with categories."""
    import boto3

    from instructmix.config import TestbedConfig
    from instructmix.data.testbed import generate

    train, evals = generate(0, TestbedConfig(items_per_category=30, eval_per_category=4,
                                             categories=CATEGORIES))

    def jsonl(rows) -> bytes:
        return "".join(json.dumps({"instruction": r["messages"][0]["content"],
                                   "output": r["messages"][1]["content"],
                                   "category": r["category"]}) + "\n" for r in rows).encode()

    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="data/pool.jsonl", Body=jsonl(train))
    s3.put_object(Bucket=bucket, Key="data/eval.jsonl", Body=jsonl(evals))


def _run(config, address: str, env: dict, **extra_env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", FAIL_AT_STEP)}
    full.update(env, **extra_env)
    return subprocess.run([sys.executable, "-m", "instructmix.cli", "run", str(config),
                           "--set", f"ray.address={address}"],
                          env=full, capture_output=True, text=True, timeout=500)


@pytest.fixture
def nodes_of_their_own(s3_env, tmp_path):
    """A simulated cluster whose nodes keep a remote run's files in a folder of their own."""
    cluster = SimCluster(tmp_path, INSTRUCTMIX_MIRROR=str(tmp_path / "nodes-mirror"))
    try:
        yield cluster
    finally:
        cluster.stop()


def test_run_on_s3_then_resume_without_the_mirror(s3_env, bucket, tmp_path,
                                                  nodes_of_their_own):
    t0 = time.time()
    address = nodes_of_their_own.address
    _upload_pool(bucket)
    run = f"s3://{bucket}/run"
    cfg = tiny_config(run, pool={"sources": [{"path": f"s3://{bucket}/data/pool.jsonl",
                                              "name": "mydata"}],
                                 "eval_sources": [{"path": f"s3://{bucket}/data/eval.jsonl"}]},
                      select={"budget": 64},  # 4 steps of 2 workers x 8 rows
                      train={"max_failures": 0, "checkpoint_every": 2})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_unset=True)))

    # fails after step 3, one step after a checkpoint (not on it: Ray Train may see the
    # error before the report of a checkpoint made on the failing step)
    first = _run(config, address, s3_env, **{FAIL_AT_STEP: "3"})  # the driver gives up in train
    t1 = time.time()
    assert first.returncode == 1, first.stderr[-3000:]
    keys = set(bucket_files(bucket, "run/"))
    for stage in ("pool", "model", "probe", "policy", "select"):
        assert f"run/{stage}/_DONE.json" in keys, sorted(keys)
    assert {"run/run_config.json", "run/pool/stats.json", "run/select/train.parquet",
            "run/train/_STARTED.json"} <= keys and "run/train/_DONE.json" not in keys
    checkpoints = {k.split("/")[4] for k in keys if k.startswith("run/train/ray_results/sft/")
                   and k.split("/")[4].startswith("checkpoint_")}
    assert checkpoints, sorted(keys)  # Ray Train wrote its checkpoints to the bucket
    mirror = storage.mirror_of(run)
    assert not any((mirror / "train" / "ray_results").rglob("*.pt"))  # ... not the mirror
    # Ray Train's workers fetched the start model into the nodes' own folder
    node_run = tmp_path / "nodes-mirror" / "s3" / bucket / "run"
    assert (node_run / "model" / "hf" / "model.safetensors").is_file()

    shutil.rmtree(mirror)  # another machine: nothing local
    t2 = time.time()
    second = _run(config, address, s3_env)
    t3 = time.time()
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stderr
    for stage in ("pool", "model", "probe", "policy", "select"):
        assert f"[{stage}] up to date" in log
    assert "[train] running (resuming)" in log
    objects = bucket_files(bucket, "run/")
    done = json.loads(objects["run/train/_DONE.json"])
    assert done["summary"]["resumed_from"] == [2] and done["summary"]["steps"] == 4
    stats = json.loads(objects["run/pool/stats.json"])
    assert stats["accepted"] == 90 and stats["eval"]["accepted"] == 12
    results = json.loads(objects["run/eval/results.json"])
    assert set(results["per_category"]) == set(CATEGORIES)
    assert "run/train/model/model.safetensors" in objects
    # ... and the eval stage's scoring tasks the trained model
    assert (node_run / "train" / "model" / "model.safetensors").read_bytes() == objects[
        "run/train/model/model.safetensors"]
    assert b"Token accuracy per category" in objects["run/report/report.html"]
    assert f"instructmix report: {run}</h1>".encode() in objects["run/report/report.html"]
    assert json.loads(objects["run/report/report.json"])["eval"]["results"] == results
    # the secret went from the environment to the S3 client, nowhere else
    leaks = [k for k, v in objects.items() if SECRET.encode() in v]
    assert not leaks and SECRET not in first.stderr + first.stdout + log + second.stdout
    print(f"s3 run: {t1 - t0:.0f} s, resumed run: {t3 - t2:.0f} s, in all "
          f"{time.time() - t0:.0f} s")
