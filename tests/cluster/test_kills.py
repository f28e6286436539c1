"""Real kills on the simulated cluster: SIGKILL of a Ray Train worker, of a probe trial's
process (pids from Ray's state API) and of the `instructmix run` driver itself."""

import json
import os
import re
import signal

import pytest

from tests.cluster.conftest import EVERY, PER_EPOCH, STEPS, copy_run, write_config
from tests.cluster.sim_cluster import Driver, checkpoint_step
from tests.processes import wait_for

pytestmark = pytest.mark.slow


def _summary(run, stage: str) -> dict:
    return json.loads((run / stage / "_DONE.json").read_text())["summary"]


def _train_workers(cluster) -> list | None:
    workers = [w for w in cluster.actors("RayTrainWorker") if w.pid]
    return workers if len(workers) == 2 else None


def _losses_logged(log: str, pids) -> dict[int, float]:
    """{step: loss} that rank 0 logged from one of `pids` (Ray prefixes worker lines with
    the pid)."""
    pattern = r"pid=(\d+)\).*train: step (\d+)/\d+ loss ([\d.]+)"
    return {int(s): float(v) for p, s, v in re.findall(pattern, log) if int(p) in pids}


def test_sigkill_of_a_train_worker_resumes_from_the_last_checkpoint(full_cluster, base_run,
                                                                    tmp_path):
    cluster = full_cluster
    run = copy_run(base_run[0], tmp_path / "run")
    cfg = write_config(tmp_path / "run.yaml", run)
    with Driver(cfg, cluster.address, tmp_path / "driver.log", "train") as d:
        workers = d.wait_for(lambda: _train_workers(cluster), "two Ray Train workers")
        pids = {w.pid for w in workers}

        def past_checkpoint_and_epoch() -> bool:
            """A step of the epoch after a registered checkpoint, early in its interval (the
            driver's log lags the workers; a later kill could pass the next checkpoint)."""
            registered = checkpoint_step(run)
            next_epoch = -(-registered // PER_EPOCH) * PER_EPOCH
            logged = max(_losses_logged(d.log_path.read_text(), pids), default=0)
            return registered >= EVERY and next_epoch < logged <= registered + EVERY // 2

        d.wait_for(past_checkpoint_and_epoch, "a step after a checkpoint and an epoch boundary")
        os.kill(workers[-1].pid, signal.SIGKILL)
        registered = checkpoint_step(run)
        log = d.finish()
    assert len(cluster.names(w.node_id for w in workers)) == 2  # one worker per node
    (resumed,) = _summary(run, "train")["resumed_from"]
    assert resumed % EVERY == 0 and registered <= resumed < STEPS
    # the killed attempt trained past that checkpoint and an epoch boundary, by less than
    # one interval: nothing was trained twice beyond one checkpoint interval
    before = _losses_logged(log, pids)
    assert -(-resumed // PER_EPOCH) * PER_EPOCH < max(before) < resumed + EVERY, before
    history = json.loads((run / "train" / "history.json").read_text())
    steps = list(range(1, STEPS + 1))
    assert [h["step"] for h in history] == steps  # every step once, in order
    assert [h["epoch"] for h in history] == [(s - 1) // PER_EPOCH for s in steps]
    # the resumed run repeats the killed attempt's steps exactly: the same losses
    loss = {h["step"]: h["loss"] for h in history}
    assert all(round(loss[s], 4) == v for s, v in before.items()), (before, loss)
    # two groups of workers: the one killed and the one that resumed
    wait_for(lambda: len([a for a in cluster.actors("RayTrainWorker", state="DEAD")
                          if a.job_id == workers[0].job_id]) == 4, 60, "4 exited workers")


def test_sigkill_of_a_probe_trial_is_retried(full_cluster, base_run, tmp_path):
    cluster = full_cluster
    run = copy_run(base_run[0], tmp_path / "run")
    cfg = write_config(tmp_path / "run.yaml", run, select={"strategy": "milp"})
    with Driver(cfg, cluster.address, tmp_path / "driver.log", "probe") as d:
        os.kill(d.wait_for(cluster.training_trial, "a training probe trial"), signal.SIGKILL)
        log = d.finish()
    retried = re.findall(r"probes: trial (\S+) failed \(Tune retries", log)
    assert len(retried) == 1, log[-3000:]
    probes = json.loads((run / "probe" / "probes.json").read_text())
    assert probes["failed"] == [] and len(probes["trials"]) == 4
    assert all(t["loss"] for t in probes["trials"])  # the killed trial too
    gamma = json.loads((run / "probe" / "interactions.json").read_text())["gamma"]
    assert len(gamma) == 3 and all(v is not None for row in gamma for v in row)


def _trials_done(log) -> set[str]:
    """Names of the probe trials a driver's log says finished."""
    return set(re.findall(r"probes: trial (\S+) done", log.read_text()))


def test_sigkill_of_the_driver_between_and_inside_stages(full_cluster, base_run, tmp_path):
    cluster = full_cluster
    run = copy_run(base_run[0], tmp_path / "run")
    cfg = write_config(tmp_path / "run.yaml", run, select={"strategy": "milp"})
    logs = []

    def driver() -> Driver:
        logs.append(tmp_path / f"{len(logs) + 1}.log")
        return Driver(cfg, cluster.address, logs[-1], "train")

    with driver() as d:  # inside the probe stage: a trial finished, others running
        d.wait_for(lambda: _trials_done(logs[0]), "a finished probe trial")
        d.kill()
        finished = _trials_done(logs[0])
    with driver() as d:  # between stages: select done, train starting
        d.wait_for(lambda: (run / "select" / "_DONE.json").exists(), "the select stage")
        d.kill()
    with driver() as d:  # inside the train stage, after a checkpoint
        d.wait_for(lambda: checkpoint_step(run) >= EVERY, "a train checkpoint")
        d.kill()
    # no orphans: Ray ends the job of a dead driver, its Train workers with it
    wait_for(lambda: not cluster.actors("RayTrainWorker"), 60, "the workers to exit")
    step = checkpoint_step(run)
    assert not (run / "train" / "_DONE.json").exists()
    with driver() as d:
        d.finish()
    text = [log.read_text() for log in logs]
    # each rerun skips the finished stages and resumes the interrupted one
    assert "[probe] running (resuming)" in text[1]
    assert "probes: restoring the Tune experiment" in text[1]
    rerun = _trials_done(logs[1])
    assert len(rerun) == 4 - len(finished) and not rerun & finished  # only the unfinished
    assert all(f"trial {t} kept: it finished before" in text[1] for t in finished)
    for later in text[2:]:
        assert all(f"[{s}] up to date" in later for s in ("pool", "model", "probe", "select"))
    assert "[train] running (resuming)" in text[3]
    assert _summary(run, "train")["resumed_from"] == [step]
    assert len(json.loads((run / "probe" / "probes.json").read_text())["trials"]) == 4
