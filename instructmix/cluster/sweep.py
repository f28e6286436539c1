"""Ray Tune sweeps of short in-process fine-tunes (probes and baseline comparisons).

One trial per entry of `trials` (grid search over the list). Tune writes its own results
(`<storage>/<name>/<trial>/result.json`, `progress.csv`) next to the stage's artifacts (in
the bucket when run_dir is `s3://…`). A re-run of an interrupted stage restores the
experiment and runs only unfinished or errored trials. Failed trials are retried
`max_failures` times, then reported, never dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from instructmix.storage import ray_storage

log = logging.getLogger("instructmix")


def _progress_callback(name: str, total: int):
    """One log line per finished or failed trial (Tune's own reporter is off)."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self):
            self.finished = 0

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.finished += 1
            log.info("%s: trial %s done (%d/%d)", name, _trial_name(trial.config),
                     self.finished, total)

        def on_trial_error(self, iteration, trials, trial, **info):
            log.warning("%s: trial %s failed (Tune retries it up to its max_failures)", name,
                        _trial_name(trial.config))

    return Progress()


def _trial_name(config: dict | None) -> str:
    return str((config or {}).get("trial", {}).get("name", "?"))


def run_trials(name: str, trials: list, trainable, storage: Path, cpus_per_trial: float,
               max_concurrent: int | None, max_failures: int) -> tuple[list[dict], list[dict]]:
    """Run one Tune trial per spec of `trials` (each with `to_dict()`: the trainable gets
    it as `config["trial"]`); returns (metrics of finished trials, failures
    [{trial, error, path}])."""
    import ray
    from ray import tune

    trials = [t.to_dict() for t in trials]
    fn = tune.with_resources(trainable, {"cpu": cpus_per_trial})
    root, fs = ray_storage(storage)  # a remote run's folder: straight to the bucket
    path = f"{root}/{name}"
    if max_concurrent is None:
        max_concurrent = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial))
    if tune.Tuner.can_restore(path, storage_filesystem=fs):
        log.info("%s: restoring the Tune experiment in %s", name, path)
        tuner = tune.Tuner.restore(path, trainable=fn, resume_errored=True,
                                   storage_filesystem=fs)
    else:
        tuner = tune.Tuner(
            fn, param_space={"trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
            run_config=tune.RunConfig(name=name, storage_path=root, storage_filesystem=fs,
                                      failure_config=tune.FailureConfig(
                                          max_failures=max_failures),
                                      callbacks=[_progress_callback(name, len(trials))],
                                      verbose=0))
    log.info("%s: %d trials, %d at a time", name, len(trials), max_concurrent)
    grid = tuner.fit()
    done, failed = [], []
    for r in grid:
        trial = (r.config or {}).get("trial", {})
        if r.error is not None:
            first = (str(r.error).strip().splitlines() or ["?"])[-1]
            failed.append({"trial": trial.get("name"), "error": first, "path": r.path})
        else:
            done.append(dict(r.metrics, trial=trial.get("name")))
    for f in failed:
        log.warning("%s: trial %s failed after %d retries: %s (logs in %s)", name, f["trial"],
                    max_failures, f["error"], f["path"])
    return done, failed
