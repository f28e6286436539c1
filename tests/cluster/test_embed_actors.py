"""How many embedding actors the pool starts: never so many that Ray could place them so
that no node keeps a whole CPU for the tasks feeding them (with 1-CPU nodes it hung)."""

import itertools
import json

import pytest

from instructmix.cluster import cluster_cpus, node_cpus, starvation_free_actors
from tests.cluster.conftest import write_config
from tests.cluster.sim_cluster import Driver, SimCluster

EMBEDDER = "MapWorker(MapBatches(EmbedBatch))"


def _starved(cpus: list[float], placement: tuple[int, ...], actor_cpus: float) -> bool:
    """Whether actors on these nodes leave every node less than one free CPU (or do not
    fit)."""
    used = [0.0] * len(cpus)
    for node in placement:
        used[node] += actor_cpus
    if any(u > c for u, c in zip(used, cpus, strict=True)):
        return False  # Ray would not place them so
    return all(c - u < 1 for u, c in zip(used, cpus, strict=True))


@pytest.mark.parametrize("cpus", [[2], [1, 1], [1, 1, 1], [2, 2, 2], [4, 1], [1.5, 3],
                                  [0, 2, 2], [8]])
@pytest.mark.parametrize("actor_cpus", [0.5, 1.0])
def test_no_placement_of_the_limit_starves_every_node_and_one_more_can(cpus, actor_cpus):
    limit = starvation_free_actors(cpus, actor_cpus)
    nodes = range(len(cpus))
    assert not any(_starved(cpus, p, actor_cpus)
                   for p in itertools.product(nodes, repeat=limit))
    if limit > 1 or sum(c >= 1 for c in cpus) > 1:  # the bound is tight
        assert any(_starved(cpus, p, actor_cpus)
                   for p in itertools.product(nodes, repeat=limit + 1))


def test_two_cpus_keep_two_actors_and_one_cpu_nodes_one_fewer_than_nodes():
    assert starvation_free_actors([2], 0.5) == 2  # this machine: unchanged
    assert starvation_free_actors([1, 1, 1], 0.5) == 2
    assert starvation_free_actors([2, 2, 2], 0.5) == 8


def test_node_cpus_of_a_live_instance(ray_local):
    assert sum(node_cpus()) == cluster_cpus()


@pytest.mark.slow
def test_pool_stage_finishes_on_one_cpu_nodes_with_the_default_actors(tmp_path):
    """Three 1-CPU nodes: one actor of 0.5 CPU per node (the default before the cap: one per
    CPU) hung the stage; the default now starts one fewer than the nodes."""
    cluster = SimCluster(tmp_path, node_cpus=1)
    try:
        run = tmp_path / "run"
        cfg = write_config(tmp_path / "run.yaml", run, pool={"embed_actors": None})
        with Driver(cfg, cluster.address, tmp_path / "driver.log", "pool") as driver:
            log = driver.finish(timeout=300)
        embedders = cluster.actors(EMBEDDER, state=None)
        assert len(embedders) == starvation_free_actors([1, 1, 1], 0.5) == 2, embedders
        assert "may hang" not in log
        stats = json.loads((run / "pool" / "stats.json").read_text())
        assert stats["counts_add_up"] and stats["accepted"] > 0, stats
    finally:
        cluster.stop()
