"""Connecting to Ray: a local instance for tests and demos, or an existing cluster."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("instructmix")


def ensure_ray(address: str | None = None, num_cpus: int | None = None, dashboard: bool = False):
    """Join `address` (or RAY_ADDRESS, as set by `ray job submit`), else start locally."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Offline unless the user allows downloads (HF_HUB_OFFLINE=0), on every worker alike.
    offline = os.environ.get("HF_HUB_OFFLINE", "1")
    env = {"env_vars": {"HF_HUB_OFFLINE": offline, "TOKENIZERS_PARALLELISM": "false"}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
    else:  # "local": a new instance, never a cluster that `ray start` left running
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard,
                 runtime_env=env)
    log.info("ray: %s CPUs, %s GPUs", cluster_cpus(), ray.cluster_resources().get("GPU", 0))


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))
