"""`python -m tests.cluster.gpu_trials FOLDER`: two Tune trials of half a GPU each, through
`sweep.run_trials`, on a local Ray instance told it has one GPU (Ray's resources are
logical; this machine has none). Prints what each trial was given and the device
`this_trial_device` chose, or its error; then one probe trial (`fine_tune_and_score`, the
real trainable) asking for the GPU, and how it ended."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.storage.sweep_on_s3 import Spec  # a trial spec that is only a name


def trainable(config: dict) -> None:
    import ray
    from ray import tune

    from instructmix.cluster.sweep import this_trial_device

    try:
        device = this_trial_device()
    except RuntimeError as e:
        device = f"error: {e}"
    tune.report({"gpu_ids": json.dumps([str(i) for i in ray.get_gpu_ids()]), "device": device,
                 "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")})


def _probe(folder: Path):
    """A probe trial over one row (its model is never reached without CUDA)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from instructmix.config import TrainConfig
    from instructmix.experiments.trial import TrialSpec, in_process

    rows = folder / "rows.parquet"
    pq.write_table(pa.table({"id": ["r0"], "category": ["c"], "answer": ["a"], "messages": [[
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]}), rows)
    return TrialSpec("probe-gpu", 0, str(rows), str(rows), str(folder / "no-model"),
                     in_process(TrainConfig()))


def main(folder: str) -> None:
    import ray

    from instructmix.cluster.sweep import concurrent_trials, per_trial, run_trials
    from instructmix.experiments.trial import fine_tune_and_score

    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False)
    resources = per_trial(0.5, 0.5)
    done, failed = run_trials("gpu", [Spec("a"), Spec("b")], trainable, Path(folder),
                              resources, None, 0)
    probe_done, probe_failed = run_trials("gpu-probe", [_probe(Path(folder))],
                                          fine_tune_and_score, Path(folder), per_trial(1, 1),
                                          None, 0)
    print(json.dumps({"resources": resources, "failed": failed,
                      "probe": {"done": len(probe_done),
                                "errors": [f["error"] for f in probe_failed]},
                      "concurrent": concurrent_trials(ray.cluster_resources(), resources),
                      "trials": {d["trial"]: {k: d[k] for k in ("gpu_ids", "device",
                                                                "cuda_visible_devices")}
                                 for d in done}}))


if __name__ == "__main__":
    main(sys.argv[1])
