"""A trial's process gives back the heap its trial freed before Tune hands it the next."""

import numpy as np
import psutil

from instructmix.cluster.sweep import releasing

MB = 2**20
KEPT = []  # what outlives a trial in its process (a library's cache, say)


def _trial(config):
    """Frees all but the last of many heap-sized blocks (64 KiB each, under glibc's mmap
    threshold); the last one outlives the trial and keeps the freed memory below it."""
    blocks = [np.ones(8192) for _ in range(config["blocks"])]
    KEPT.append(blocks[-1])


def _growth(trainable) -> float:
    before = psutil.Process().memory_info().rss
    trainable({"blocks": 4000})  # 250 MiB
    return (psutil.Process().memory_info().rss - before) / MB


def test_a_released_trial_leaves_its_freed_heap_with_the_system():
    try:
        assert _growth(releasing(_trial)) < 50
        assert _growth(_trial) > 200  # what it guards against: glibc keeps it
    finally:
        KEPT.clear()
