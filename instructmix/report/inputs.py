"""Everything the report reads, read once through the run layout.

A missing artifact is None (its section says "not available" or "not run"); an artifact
that exists but cannot be read (malformed JSON, a malformed JSONL line) is None too and adds
a problem naming the file (and line): it is shown on the page and logged, never skipped
silently. NaN/±inf come back as numbers (the layout's reader puts them back), so an
unbounded interval reads as unbounded and not as missing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import pyarrow as pa

from instructmix.layout import (
    AUGMENT,
    COMPARE,
    EVAL,
    POLICY,
    POOL,
    PROBE,
    SELECT,
    TRAIN,
    Artifact,
    RunLayout,
)
from instructmix.report.blocks import na, problem
from instructmix.report.fmt import prose

log = logging.getLogger("instructmix")

STAGES = ["pool", "model", "probe", "policy", "select", "augment", "train", "eval", "compare"]
# The pipeline's per-stage completion record ({fingerprint, seconds, summary}); written by
# the pipeline itself, not a stage artifact of the layout.
SKIPPED = {"probe": PROBE.skipped, "policy": POLICY.skipped, "augment": AUGMENT.skipped,
           "compare": COMPARE.skipped}


@dataclass
class RunData:
    """The inputs of the report; None = not there (see `missing`, `errors`)."""

    layout: RunLayout
    stats: dict | None = None
    ground_truth: dict | None = None
    history: list | None = None
    results: dict | None = None
    predictions: list | None = None
    interactions: dict | None = None
    dependencies: dict | None = None
    cost: dict | None = None
    mixture: dict | None = None
    compare: dict | None = None
    augment: dict | None = None
    rounds: list | None = None  # the policy stage's rounds (malformed records left out)
    probe_rounds: list | None = None  # the probe stage's rounds of probing and solving
    policy_cost: dict | None = None
    batch_ids: list | None = None  # the final run's global batches (pool ids per step)
    picker: dict | None = None  # the final run's picker: {"valid_history": [[step, loss]]}
    categories: dict | None = None  # pool id -> category (read only to place batch_ids)
    dones: dict = field(default_factory=dict)  # stage -> completion record or None
    skipped: dict = field(default_factory=dict)  # stage -> why it made nothing
    missing: list = field(default_factory=list)  # paths of expected inputs not found
    errors: dict = field(default_factory=dict)  # path -> problem text
    problems: list = field(default_factory=list)  # every problem, in reading order

    def path(self, art: Artifact) -> str:
        return str(self.layout.path(art))

    def problem(self, key: str, msg: str) -> None:
        log.warning("report: %s", msg)
        self.errors[key] = msg
        self.problems.append(msg)

    def json(self, art: Artifact, expected: bool = False):
        if not self.layout.exists(art):
            if expected:
                self.missing.append(self.path(art))
            return None
        try:
            return self.layout.read_json(art)
        except (OSError, ValueError) as e:
            self.problem(self.path(art), f"{self.path(art)}: not valid JSON ({e}); not shown")
            return None

    def shaped(self, art: Artifact, kind: type, what: str):
        """The JSON artifact when it is a `kind`; valid JSON of another shape is a problem
        ("not <what>"), not a silent None."""
        value = self.json(art)
        if value is None or isinstance(value, kind):
            return value
        self.problem(self.path(art), f"{self.path(art)}: not {what} (found JSON "
                                     f"{type(value).__name__}); not shown")
        return None

    def jsonl(self, art: Artifact, expected: bool = False) -> list | None:
        if not self.layout.exists(art):
            if expected:
                self.missing.append(self.path(art))
            return None
        try:
            return self.layout.read_jsonl(art)
        except (OSError, ValueError) as e:
            self.problem(self.path(art), f"{e}; the file is not shown")
            return None

    def done(self, stage: str) -> dict | None:
        try:
            record = self.layout.read_marker(stage, "done")
        except (OSError, ValueError) as e:
            path = self.layout.marker_path(stage, "done")
            self.problem(str(path), f"{path}: not valid JSON ({e})")
            return None
        return record if isinstance(record, dict) else None


def _typed(value, kind: type):
    return value if isinstance(value, kind) else None


ROUND = "a round {round, episodes: [{name, return, ...}], failed: [...], ppo: {...}}"


def _is_round(r) -> bool:
    return (isinstance(r, dict) and isinstance(r.get("episodes"), list)
            and all(isinstance(e, dict) for e in r["episodes"])
            and isinstance(r.get("ppo", {}), dict) and isinstance(r.get("failed", []), list))


def _rounds(d: RunData) -> list | None:
    """The policy stage's rounds; a record of another shape is a problem (keyed
    "<path>#<k>") and left out, the others are shown."""
    rounds = d.shaped(POLICY.rounds, list, "a list of round records")
    if rounds is None:
        return None
    path = d.path(POLICY.rounds)
    for k, r in enumerate(rounds):
        if not _is_round(r):
            d.problem(f"{path}#{k}", f"{path}: record {k} is not {ROUND}; that record is "
                                     "not shown")
    return [r for r in rounds if _is_round(r)]


def _batch_ids(d: RunData) -> list | None:
    ids = d.shaped(TRAIN.batch_ids, list, "a list of batches")
    bad = [k for k, b in enumerate(ids or []) if not isinstance(b, list)]
    if bad:
        d.problem(d.path(TRAIN.batch_ids), f"{d.path(TRAIN.batch_ids)}: batch {bad[0]} is "
                  "not a list of pool ids; not shown")
        return None
    return ids


def _picker(d: RunData) -> dict | None:
    picker = d.shaped(TRAIN.picker, dict, "an object with a valid_history")
    if picker is None:
        return None
    history = picker.get("valid_history")
    if isinstance(history, list) and all(isinstance(p, list) and len(p) == 2
                                         for p in history):
        return picker
    d.problem(d.path(TRAIN.picker), f"{d.path(TRAIN.picker)}: valid_history is not a list "
              "of [step, validation loss] pairs; not shown")
    return None


def _categories(d: RunData) -> dict | None:
    """Pool id -> category, read only when there are batches to place."""
    if d.batch_ids is None or not d.layout.exists(POOL.shards):
        return None
    try:
        pool = d.layout.read_table(POOL.shards, ["id", "category"])
    except (OSError, ValueError, pa.ArrowException) as e:
        d.problem(d.path(POOL.shards), f"{d.path(POOL.shards)}: the pool's ids and "
                  f"categories could not be read ({e}); not shown")
        return None
    cats = ["no category" if c is None else str(c) for c in pool.column("category").to_pylist()]
    return dict(zip(map(str, pool.column("id").to_pylist()), cats, strict=True))


def read_run(layout: RunLayout) -> RunData:
    d = RunData(layout)
    d.stats = _typed(d.json(POOL.stats, expected=True), dict)
    d.ground_truth = _typed(d.json(POOL.ground_truth), dict)
    d.history = _typed(d.json(TRAIN.history, expected=True), list)
    d.results = _typed(d.json(EVAL.results, expected=True), dict)
    d.predictions = d.jsonl(EVAL.predictions, expected=True)
    d.interactions = _typed(d.json(PROBE.interactions), dict)
    d.dependencies = _typed(d.json(PROBE.dependencies), dict)
    d.cost = _typed(d.json(PROBE.cost), dict)
    d.mixture = _typed(d.json(SELECT.mixture), dict)
    d.compare = _typed(d.json(COMPARE.results), dict)
    d.augment = _typed(d.json(AUGMENT.stats), dict)
    d.rounds = _rounds(d)
    d.probe_rounds = (d.shaped(PROBE.rounds, dict, "an object with a list of rounds")
                      or {}).get("rounds")
    d.policy_cost = d.shaped(POLICY.cost, dict, "an object of costs")
    d.batch_ids = _batch_ids(d)
    d.picker = _picker(d)
    d.categories = _categories(d)
    d.dones = {s: d.done(s) for s in STAGES}
    for stage, art in SKIPPED.items():
        why = d.json(art)
        if isinstance(why, dict):
            d.skipped[stage] = str(why.get("reason") or "the stage made nothing")
    return d


def summary_of(data: RunData, stage: str) -> dict:
    """The summary a stage reported when it finished ({} when it did not)."""
    s = (data.dones.get(stage) or {}).get("summary")
    return s if isinstance(s, dict) else {}


def seconds_of(data: RunData, stage: str):
    s = (data.dones.get(stage) or {}).get("seconds")
    return s if isinstance(s, (int, float)) and math.isfinite(s) else None


def absent(data: RunData, art: Artifact) -> dict:
    """The block shown for an input that is not there: "not available: <path>", or the
    problem that kept it from being read."""
    if data.path(art) in data.errors:
        return problem(data.errors[data.path(art)])
    return na(f"not available: {data.path(art)}")


def problems_of(data: RunData, art: Artifact) -> list[dict]:
    """The problems of an artifact's records (keyed "<path>#<record>"), next to what it
    still shows."""
    prefix = data.path(art) + "#"
    return [problem(msg) for key, msg in data.errors.items() if key.startswith(prefix)]


def not_run(data: RunData, stage: str, art: Artifact) -> dict:
    """The block shown for the output of an optional stage that did not run (or made
    nothing, and said why)."""
    if data.path(art) in data.errors:
        return problem(data.errors[data.path(art)])
    if stage in data.skipped:
        return na(f"not run: {prose(data.skipped[stage])}")
    return na(f"not run: the {stage} stage has not written {data.path(art)}")
