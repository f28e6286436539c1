"""The pipeline on a simulated 3-node cluster: pool, probes and the Train run spread over the
nodes (read from Ray's state API), and a node removed during the probes and another during
training: the lost trials are retried, Train resumes from its checkpoint on the nodes left."""

import json
import re

import pytest

from tests.cluster.conftest import EVERY, STEPS, copy_run, write_config
from tests.cluster.sim_cluster import TRIAL_ACTOR, Driver, checkpoint_step

pytestmark = pytest.mark.slow


def test_pipeline_spreads_over_nodes_and_survives_losing_them(full_cluster, base_run, tmp_path):
    cluster = full_cluster
    base, pool_nodes = base_run
    # the pool stage ran on every node: Ray Data's tasks and its embedding actors
    assert len(pool_nodes["tasks"]) > 1 and len(pool_nodes["embedders"]) > 1, pool_nodes
    run = copy_run(base, tmp_path / "run")
    cfg = write_config(tmp_path / "run.yaml", run, select={"strategy": "milp"})
    with Driver(cfg, cluster.address, tmp_path / "driver.log", "train") as d:
        # a probe trial training on node_b: remove the node under it
        d.wait_for(lambda: cluster.training_trial("node_b"), "a trial training on node_b")
        cluster.remove("node_b")
        d.wait_for(lambda: (run / "probe" / "_DONE.json").exists(), "the probes", 400)
        cluster.add("node_b")  # a replacement joins
        # Train: after its first checkpoint, remove a worker node that runs a Train worker
        d.wait_for(lambda: checkpoint_step(run) >= EVERY, "the first checkpoint")
        workers = cluster.actors("RayTrainWorker")
        name = next(n for n in ("node_a", "node_b")
                    if cluster.nodes[n] in {w.node_id for w in workers})
        victim, step = cluster.nodes[name], checkpoint_step(run)
        cluster.remove(name)
        log = d.finish()

    job = workers[0].job_id
    trials = [a for a in cluster.actors(TRIAL_ACTOR, state=None) if a.job_id == job]
    assert cluster.names(a.node_id for a in trials) == {"head", "node_a", "node_b"}
    # the trials lost with node_b were retried; every probe has its scores and Γ is whole
    assert re.findall(r"probes: trial (\S+) failed \(Tune retries", log)
    probes = json.loads((run / "probe" / "probes.json").read_text())
    assert probes["failed"] == [] and all(t["loss"] for t in probes["trials"])
    gamma = json.loads((run / "probe" / "interactions.json").read_text())["gamma"]
    assert all(v is not None for row in gamma for v in row)
    # Train: two workers on two nodes, then resumed from its checkpoint without the lost node
    summary = json.loads((run / "train" / "_DONE.json").read_text())["summary"]
    (resumed,) = summary["resumed_from"]  # the checkpoint registered when the node went
    assert resumed % EVERY == 0 and step <= resumed < STEPS and summary["steps"] == STEPS
    first = {w.actor_id for w in workers}
    resumed = [a.node_id for a in cluster.actors("RayTrainWorker", state=None)
               if a.job_id == job and a.actor_id not in first]
    assert len({w.node_id for w in workers}) == 2 and len(set(resumed)) == 2
    assert victim not in resumed
    history = json.loads((run / "train" / "history.json").read_text())
    assert [h["step"] for h in history] == list(range(1, STEPS + 1))
