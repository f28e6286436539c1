"""Shared fixtures: one real local Ray instance for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from instructmix.cluster import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def tiny_config(run_dir: Path, **sections):
    """A run config small enough for a test: 9 categories x 40 items, a few steps."""
    from instructmix.config import RunConfig

    data = {
        "run_dir": str(run_dir),
        "pool": {"testbed": {"items_per_category": 40, "eval_per_category": 4},
                 "num_clusters": 3},
        "model": {"n_layer": 1, "n_embd": 32, "n_head": 2, "max_positions": 64},
        "select": {"budget": 256},
        "train": {"micro_batch_size": 8, "epochs": 1, "max_steps": 6, "checkpoint_every": 3,
                  "log_every": 2, "max_seq_len": 64},
        "eval": {"max_new_tokens": 8},
    }
    for key, value in sections.items():
        data.setdefault(key, {}).update(value) if isinstance(value, dict) else data.update(
            {key: value})
    return RunConfig.model_validate(data)


def pytest_collection_modifyitems(items):
    """The `ray job submit` test runs first: its teardown (`ray stop --force`) stops every
    Ray instance on the machine, which would take the session's in-process Ray with it."""
    items.sort(key=lambda item: "test_job_submit" not in item.nodeid)
