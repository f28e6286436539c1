"""Fixtures of the multi-node and kill tests: one simulated cluster for the package, and
the pool and model stages run on it once (tests copy that run folder and go on)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cluster.sim_cluster import NODES, Driver, SimCluster
from tests.conftest import tiny_config

CATS = ["reverse", "upper", "rev_upper"]
# One Train worker or probe trial per node (2 logical CPUs each). Train: 144 rows / (8 x 2
# workers) = PER_EPOCH steps per epoch, STEPS steps, a checkpoint every EVERY steps. Steps
# take ~0.05 s and the driver's log lags the workers, so a fault is timed on a registered
# checkpoint (the loop waits for each to register) and the test reads which one the run
# resumed from; STEPS leaves 2 intervals after the first checkpoint for the fault to land in.
PER_EPOCH, EVERY, STEPS = 9, 60, 180
SECTIONS = {
    "pool": {"testbed": {"items_per_category": 60, "eval_per_category": 4,
                         "categories": CATS}, "embed_actors": 3,  # one per node
             "dedupe_rows": 50},  # 4 partitions: the disk shuffle runs across the nodes
    "probes": {"design": "intervention", "seeds": 1, "base_per_category": 10,
               "add_per_category": 10, "epochs": 1, "micro_batch_size": 4,
               "valid_per_category": 6, "dependencies": "asymmetry", "cpus_per_trial": 2,
               "max_failures": 2},
    "select": {"strategy": "iid", "budget": 144},
    "train": {"num_workers": 2, "cpus_per_worker": 2, "epochs": 20, "max_steps": STEPS,
              "checkpoint_every": EVERY, "log_every": 1, "warmup_steps": 2, "max_failures": 2},
}


def write_config(path: Path, run_dir: Path, **changes) -> Path:
    """A tiny run config (tests.conftest.tiny_config with SECTIONS and `changes`) as YAML."""
    sections = {k: dict(v, **changes.pop(k, {})) for k, v in SECTIONS.items()}
    cfg = tiny_config(run_dir, **sections, **changes)
    path.write_text(json.dumps(cfg.model_dump(mode="json", by_alias=True)))  # JSON is YAML
    return path


def copy_run(base: Path, dst: Path) -> Path:
    shutil.copytree(base, dst)
    return dst


@pytest.fixture(scope="package")
def sim_cluster(tmp_path_factory):
    cluster = SimCluster(tmp_path_factory.mktemp("sim_cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def full_cluster(sim_cluster):
    """The simulated cluster with every node up (a test may have removed one)."""
    for name in NODES:
        if name not in sim_cluster.nodes:
            sim_cluster.add(name)
    return sim_cluster


@pytest.fixture(scope="package")
def base_run(sim_cluster, tmp_path_factory):
    """(run folder with the pool and model stages done on the cluster, the nodes the pool
    stage's tasks and actors ran on)."""
    tmp = tmp_path_factory.mktemp("base")
    run = tmp / "run"
    with Driver(write_config(tmp / "base.yaml", run), sim_cluster.address, tmp / "driver.log",
                "model") as driver:
        driver.finish()
    # the first job on the cluster: the pool stage's Ray Data tasks and embedding actors
    embedders = sim_cluster.actors("MapWorker(MapBatches(EmbedBatch))", state=None)
    tasks = sim_cluster.tasks(type="NORMAL_TASK", job_id=embedders[0].job_id)
    return run, {"tasks": sim_cluster.names(t.node_id for t in tasks),
                 "embedders": sim_cluster.names(a.node_id for a in embedders)}
