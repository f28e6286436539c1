"""With `ray.dashboard: true` a local run is visible in Ray's dashboard, only on loopback and
only with the Ray token; Tune's trials leave TensorBoard event files under run_dir."""

from __future__ import annotations

import struct
from urllib.parse import urlparse

import pytest

from tests.cluster.watched_run import watched_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run():
    run = watched_run()
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _state_rows(run, endpoint: str) -> list[dict]:
    """Every row the state API returned over the run (actors and tasks come and go)."""
    return [row for answer in run.polls.get(endpoint, [])
            for row in answer["data"]["result"]["result"]]


def test_dashboard_shows_this_runs_job_tune_trials_and_ray_data(run):
    assert run.dashboard, "the driver did not log the dashboard URL"
    jobs = [job for answer in run.polls["/api/jobs/"] for job in answer]
    ours = {job["job_id"] for job in jobs
            if job["type"] == "DRIVER" and job["driver_info"]["pid"] == str(run.pid)}
    assert len(ours) == 1, jobs[-3:]
    actors = [a for a in _state_rows(run, "/api/v0/actors?limit=10000") if a["job_id"] in ours]
    tasks = [t for t in _state_rows(run, "/api/v0/tasks?limit=10000") if t["job_id"] in ours]
    classes = {a["class_name"] for a in actors}
    assert "ImplicitFunc" in classes, classes  # a Tune trial of a function trainable
    assert any(c.startswith("MapWorker(") for c in classes), classes  # Ray Data actor pool
    names = {t["name"] for t in tasks}
    assert any(n.endswith("fine_tune_and_score.train") for n in names), names  # a probe
    assert any(n.startswith(("MapBatches(", "ReadRange", "Write")) for n in names), names


def test_dashboard_needs_the_token(run):
    assert run.without_token == 401


def test_dashboard_listens_on_loopback_only(run):
    assert urlparse(run.dashboard).hostname == "127.0.0.1"
    assert run.listening == {"127.0.0.1"}
    if not run.elsewhere:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    # another address of this machine reaches a listener on every interface, not this one
    assert all(run.control.values()), run.control
    assert not any(run.elsewhere.values()), run.elsewhere


def _scalar_tags(path) -> set[str]:
    """Tags of the scalars in one TensorBoard event file (TFRecord framing)."""
    from tensorboardX.proto.event_pb2 import Event

    data, at, tags = path.read_bytes(), 0, set()
    while at < len(data):
        (size,) = struct.unpack("<Q", data[at:at + 8])
        event = Event.FromString(data[at + 12:at + 12 + size])
        tags |= {value.tag for value in event.summary.value}
        at += 12 + size + 4
    return tags


def test_tune_trials_write_tensorboard_events_under_run_dir(run):
    trials = [p for p in (run.run_dir / "probe" / "tune" / "probes").iterdir() if p.is_dir()]
    assert len(trials) == 3  # base + one per category, one seed
    for trial in trials:
        (events,) = trial.glob("events.out.tfevents.*")
        assert any(tag.startswith("ray/tune/") for tag in _scalar_tags(events)), trial.name
