"""Connecting to Ray: a local instance for tests and demos, or an existing cluster."""

from __future__ import annotations

import logging
import os

from instructmix.runtime import worker_env

log = logging.getLogger("instructmix")
_LOCAL = {"started": False}  # this process started the Ray instance it is connected to


def ensure_ray(address: str | None = None, num_cpus: int | None = None, dashboard: bool = False,
               dashboard_host: str = "127.0.0.1"):
    """Join `address` (or RAY_ADDRESS, as set by `ray job submit`), else start locally; a
    local dashboard binds to `dashboard_host` (loopback unless configured)."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Every worker gets the driver's runtime environment (offline flags, fault injection;
    # never secrets: the dashboard shows a job's runtime env).
    env = {"env_vars": worker_env()}
    if address:
        ctx = ray.init(address=address, runtime_env=env, log_to_driver=True)
    else:  # "local": a new instance, never a cluster that `ray start` left running
        if not dashboard:
            env["worker_process_setup_hook"] = f"{__name__}.{without_state_api.__name__}"
        ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard,
                       dashboard_host=dashboard_host, runtime_env=env)
        _LOCAL["started"] = True
    quiet_progress()
    log.info("ray: %s CPUs, %s GPUs", cluster_cpus(), ray.cluster_resources().get("GPU", 0))
    if ctx.dashboard_url:
        log.info("ray: dashboard at %s", dashboard_url(ctx.dashboard_url))


# Ray loggers that only report that the state API is missing, which it is without the dashboard
NEEDS_STATE_API = (
    # Ray Train's placement-group cleaner asks it once a second whether the run's
    # controller is alive, and warns each time it cannot (the run is unaffected)
    "ray.train.v2._internal.execution.controller.placement_group_cleaner",
)


def without_state_api() -> None:
    """Runs in every worker of a local instance without the dashboard (Ray's
    `worker_process_setup_hook`): keeps NEEDS_STATE_API's warnings off the console."""
    for name in NEEDS_STATE_API:
        logging.getLogger(name).setLevel(logging.ERROR)


def require_gpus(fields: list[str]) -> None:
    """`fields` ask for GPUs (`RunConfig.gpu_requests`). With none in the Ray cluster: an
    error on a local instance, which nothing adds a GPU to; a warning on a cluster, whose
    autoscaler may add GPU nodes when the work asks (ray_cluster.yaml starts without)."""
    import ray

    if not fields or ray.cluster_resources().get("GPU"):
        return
    if _LOCAL["started"]:
        raise RuntimeError(f"{', '.join(fields)}: this local Ray instance has no GPU "
                           "(set them to 0 / false to run on CPU)")
    log.warning("ray: %s ask for GPUs and the cluster has none yet: that work waits for the "
                "autoscaler to add a GPU node", ", ".join(fields))


def dashboard_url(url: str) -> str:
    """Ray reports "host:port"; the log line is an address a browser opens."""
    return url if "://" in url else f"http://{url}"


def quiet_progress() -> None:
    """No Ray Data progress by default: off a terminal Ray logs a block of lines for every
    dataset run, and most runs are short. Stages log their own lines, and turn Ray Data's on
    for their long runs (`with_progress`)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    if hasattr(ctx, "enable_rich_progress_bars"):
        ctx.enable_rich_progress_bars = False


def with_progress(ds, run):
    """`run()`, a long run of `ds` (minutes to hours at scale), with Ray Data's progress on:
    off a terminal, a few log lines every RAY_DATA_NON_TTY_PROGRESS_LOG_INTERVAL seconds
    (`runtime`: 60) while it runs, nothing after; in a terminal, a bar. Off again after, for
    `ds`, the datasets made from it (they share its context) and a dataset `run` returns."""
    ctx = ds.context
    ctx.enable_progress_bars = True
    try:
        out = run()
    finally:
        ctx.enable_progress_bars = False
    if hasattr(out, "context"):  # materialize() copies the context
        out.context.enable_progress_bars = False
    return out


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def node_cpus() -> list[float]:
    """CPUs of each live node."""
    import ray

    return [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["Alive"]]


def starvation_free_actors(cpus: list[float], actor_cpus: float) -> int:
    """The most actors of `actor_cpus` that, wherever Ray places them, leave some node a
    whole CPU for the 1-CPU tasks that feed them. A node of c CPUs has less than one free
    only with at least floor((c - 1) / actor_cpus) + 1 actors on it; the sum of that over
    the nodes starves every node, one fewer never does (1-CPU nodes: one actor fewer than
    nodes)."""
    return max(1, sum(int((c - 1) // actor_cpus) + 1 for c in cpus if c >= 1) - 1)
