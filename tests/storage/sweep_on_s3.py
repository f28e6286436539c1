"""`python -m tests.storage.sweep_on_s3 RUN_URI`: a two-trial Ray Tune sweep whose folder
is the probe stage's Tune folder of a remote run; prints the finished and failed trials.
Trial "b" fails (no retries) while FAIL_B is set."""

from __future__ import annotations

import json
import logging
import os
import sys


class Spec:
    def __init__(self, name: str):
        self.name = name

    def to_dict(self) -> dict:
        return {"name": self.name}


def trainable(config: dict) -> None:
    from ray import tune

    name = config["trial"]["name"]
    if name == "b" and os.environ.get("FAIL_B"):
        raise RuntimeError("trial b fails")
    tune.report({"score": ord(name)})


def main(uri: str) -> None:
    from instructmix import storage
    from instructmix.cluster import ensure_ray
    from instructmix.cluster.sweep import run_trials
    from instructmix.layout import PROBE, RunLayout

    logging.basicConfig(level=logging.INFO)
    ensure_ray(num_cpus=2)
    folder = RunLayout(uri).path(PROBE.tune)
    assert storage.remote_of(folder) == f"{uri}/probe/tune"
    done, failed = run_trials("probes", [Spec("a"), Spec("b")], trainable, folder,
                              resources={"cpu": 1}, max_concurrent=2, max_failures=0)
    print(json.dumps({"done": sorted(d["trial"] for d in done),
                      "failed": [f["trial"] for f in failed]}))


if __name__ == "__main__":
    main(sys.argv[1])
