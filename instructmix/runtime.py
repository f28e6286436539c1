"""The process environment every stage and Ray worker runs with, set in one place.

- Offline by default: `HF_HUB_OFFLINE=1` unless the user set it (`HF_HUB_OFFLINE=0` allows
  hub downloads); tokenizers without their own thread pool; no Ray Data progress bars
  (stages log their own lines; the pool stage turns Ray Data's on for its long runs, and
  off a terminal it is logged once a minute: `cluster.with_progress`).
- The driver's glibc malloc keeps 2 arenas (`prepare`; a `MALLOC_ARENA_MAX` the user set
  wins): with glibc's default, its memory grew with every Ray task run.
- `worker_env()` is what Ray workers get (the job's runtime env, Ray Train workers, Tune
  trials): the same variables, plus the fault-injection variables below and where object
  storage is (`STORAGE_PLACE`) when set. Credentials are not forwarded: workers take them
  from the environment they inherit or their node's (an IAM role on a cluster).
- Fault injection for tests and drills (never in the user's config):
  `INSTRUCTMIX_FAIL_TRIAL=NAME` makes that Tune trial fail once;
  `INSTRUCTMIX_FAIL_AT_STEP=N` makes the Ray Train run fail once after step N.
"""

from __future__ import annotations

import ctypes
import os

DEFAULTS = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "RAY_DATA_NON_TTY_PROGRESS_LOG_INTERVAL": "60"}
FAIL_TRIAL = "INSTRUCTMIX_FAIL_TRIAL"
FAIL_AT_STEP = "INSTRUCTMIX_FAIL_AT_STEP"
DRIVER_MALLOC_ARENAS = 2  # this process only: Ray's workers keep glibc's default
STORAGE_PLACE = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")


def prepare() -> None:
    """Set the defaults in this process (a variable the user set is kept)."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if "MALLOC_ARENA_MAX" not in os.environ:
        _limit_malloc_arenas(DRIVER_MALLOC_ARENAS)


def _limit_malloc_arenas(arenas: int) -> None:
    """glibc gives threads that allocate at once heaps of their own (up to 8 per core);
    in a driver, Ray's core-worker threads then leave freed memory scattered over them and
    the process grows with every Ray task it runs (bench/driver_tasks.py). Set before any
    thread starts; nothing happens off glibc."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", DEFAULTS["HF_HUB_OFFLINE"]) == "1"


def worker_env(**extra: str) -> dict[str, str]:
    """Environment variables for Ray workers: this process's view of the defaults, of the
    fault-injection variables and of STORAGE_PLACE, plus `extra`."""
    env = {key: os.environ.get(key, value) for key, value in DEFAULTS.items()}
    forwarded = (FAIL_TRIAL, FAIL_AT_STEP, *STORAGE_PLACE)
    env.update({k: os.environ[k] for k in forwarded if os.environ.get(k)})
    env.update(extra)
    return env


def fail_trial() -> str | None:
    return os.environ.get(FAIL_TRIAL) or None


def fail_at_step() -> int | None:
    value = os.environ.get(FAIL_AT_STEP)
    return int(value) if value else None
