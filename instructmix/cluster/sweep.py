"""Ray Tune sweeps of short in-process fine-tunes (probes and baseline comparisons).

One trial per entry of `trials` (grid search over the list). Tune writes its own results
(`<storage>/<name>/<trial>/result.json`, `progress.csv`) next to the stage's artifacts (in
the bucket when run_dir is `s3://…`). A re-run of an interrupted stage restores the
experiment and runs only unfinished or errored trials. Failed trials are retried
`max_failures` times, then reported, never dropped.

Tune saves its experiment state at most every 10 s, so a driver killed soon after a trial
finished would restore that trial as unfinished and train it again. The driver therefore
records each finished trial's metrics as it finishes (`<name>-finished/`, `FinishedTrials`);
a trial with a record reports it instead of training again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
from pathlib import Path

from instructmix.cluster import trial_files
from instructmix.storage import ray_storage

log = logging.getLogger("instructmix")


class FinishedTrials:
    """The metrics of every finished trial of a sweep, one JSON file each in `folder` (of
    the pyarrow file system `fs`; None: local), written by the driver."""

    def __init__(self, fs, folder: str):
        import pyarrow.fs as pafs

        self.fs, self.folder = fs or pafs.LocalFileSystem(), folder

    def _file(self, trial: str) -> str:  # any trial name is a safe file name this way
        return f"{self.folder}/{hashlib.sha1(trial.encode()).hexdigest()[:16]}.json"

    def record(self, trial: str, result: dict) -> bool:
        """Keep a finished trial's metrics; False when it was recorded before."""
        import pyarrow.fs as pafs
        from ray.tune.result import AUTO_RESULT_KEYS

        if self.fs.get_file_info(self._file(trial)).type != pafs.FileType.NotFound:
            return False
        skip = {*AUTO_RESULT_KEYS, "trial_id", "experiment_tag", "done"}
        metrics = {k: v for k, v in result.items() if k not in skip}
        self.fs.create_dir(self.folder, recursive=True)
        with self.fs.open_output_stream(self._file(trial)) as f:
            f.write(json.dumps({"trial": trial, "metrics": metrics}, default=_plain).encode())
        return True

    def load(self) -> dict[str, dict]:
        """{trial name: metrics}; a record cut short by a kill is not one."""
        import pyarrow.fs as pafs

        out = {}
        for info in self.fs.get_file_info(pafs.FileSelector(self.folder,
                                                            allow_not_found=True)):
            with contextlib.suppress(ValueError, KeyError), \
                    self.fs.open_input_stream(info.path) as f:
                record = json.loads(f.read())
                out[record["trial"]] = record["metrics"]
        return out

    def replaying(self, trainable):
        """`trainable`, except that a trial recorded as finished reports its record."""
        recorded = self.load()

        @functools.wraps(trainable)
        def run(config):
            metrics = recorded.get(_trial_name(config))
            if metrics is None:
                return trainable(config)
            from ray import tune

            tune.report(metrics)

        return run


def _plain(value):
    """JSON for numpy scalars (Tune's results may hold them)."""
    return value.item() if hasattr(value, "item") else str(value)


def _progress_callback(name: str, total: int, finished: FinishedTrials):
    """One log line per finished or failed trial (Tune's own reporter is off); records
    every finished trial in `finished`."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self):
            self.finished = 0

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.finished += 1
            trial_name = _trial_name(trial.config)
            new = finished.record(trial_name, trial.last_result or {})
            log.info("%s: trial %s %s (%d/%d)", name, trial_name,
                     "done" if new else "kept: it finished before an interruption",
                     self.finished, total)

        def on_trial_recover(self, iteration, trials, trial, **info):
            # a failed attempt that Tune retries (on_trial_error: the retries are spent)
            log.warning("%s: trial %s failed (Tune retries it: failure %d)", name,
                        _trial_name(trial.config), trial.num_failures)

        def on_trial_error(self, iteration, trials, trial, **info):
            log.warning("%s: trial %s failed, no retries left", name,
                        _trial_name(trial.config))

    return Progress()


def _trial_name(config: dict | None) -> str:
    return str((config or {}).get("trial", {}).get("name", "?"))


def per_trial(cpus: float, gpus: float) -> dict:
    """What one trial asks Ray for (`pipeline.run_stage` has checked GPUs up front)."""
    return {"cpu": cpus, "gpu": gpus} if gpus else {"cpu": cpus}


def concurrent_trials(cluster: dict, resources: dict) -> int:
    """Trials that fit on `cluster` (`ray.cluster_resources()`) at once, at least 1. A
    resource the cluster lacks for now (GPUs an autoscaler has yet to add) sets no bound."""
    fits = [cluster[k.upper()] // v for k, v in resources.items() if v and cluster.get(k.upper())]
    return max(1, int(min(fits, default=1)))


def trial_device(gpu_ids: list, cuda_available: bool) -> str:
    """The torch device of a trial Ray gave `gpu_ids` (`ray.get_gpu_ids()`; Ray has set
    CUDA_VISIBLE_DEVICES to them, so they are cuda:0..)."""
    if not gpu_ids:
        return "cpu"
    if not cuda_available:
        raise RuntimeError(f"Ray gave this trial GPU {', '.join(map(str, gpu_ids))} but torch "
                           "sees no CUDA device (a CPU build of torch, or no driver)")
    return "cuda"


def this_trial_device() -> str:
    """`trial_device` of the calling Tune trial."""
    import ray
    import torch

    return trial_device(ray.get_gpu_ids(), torch.cuda.is_available())


def run_trials(name: str, trials: list, trainable, storage: Path, resources: dict,
               max_concurrent: int | None, max_failures: int) -> tuple[list[dict], list[dict]]:
    """Run one Tune trial per spec of `trials` (each with `to_dict()`: the trainable gets
    it as `config["trial"]`), each with `resources` (`per_trial`); returns (metrics of
    finished trials, failures [{trial, error, path}])."""
    import ray
    from ray import tune

    # a remote run's trials may run on other nodes: they get URIs and fetch the files
    if sent := trial_files.send_inputs(trials):
        log.info("%s: %d files the trials read sent to the bucket", name, sent)
    specs, trials = trials, [trial_files.portable_dict(t) for t in trials]
    root, fs = ray_storage(storage)  # a remote run's folder: straight to the bucket
    path = f"{root}/{name}"
    finished = FinishedTrials(fs, f"{path}-finished")
    on_node = trial_files.with_files(trainable, type(specs[0]) if specs else None)
    fn = tune.with_resources(finished.replaying(on_node), resources)
    if max_concurrent is None:
        max_concurrent = concurrent_trials(ray.cluster_resources(), resources)
    if tune.Tuner.can_restore(path, storage_filesystem=fs):
        log.info("%s: restoring the Tune experiment in %s", name, path)
        tuner = tune.Tuner.restore(path, trainable=fn, resume_errored=True,
                                   storage_filesystem=fs)
    else:
        tuner = tune.Tuner(
            fn, param_space={"trial": tune.grid_search(trials)},
            # trials share a process: torch and transformers are imported once per worker
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent,
                                        reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=root, storage_filesystem=fs,
                                      failure_config=tune.FailureConfig(
                                          max_failures=max_failures),
                                      callbacks=[_progress_callback(name, len(trials),
                                                                    finished)],
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
    trial_files.fetch_outputs(specs, {d["trial"] for d in done})
    return done, failed
