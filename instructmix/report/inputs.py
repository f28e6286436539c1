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

from instructmix.layout import (
    AUGMENT,
    COMPARE,
    EVAL,
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

STAGES = ["pool", "model", "probe", "select", "augment", "train", "eval", "compare"]
# The pipeline's per-stage completion record ({fingerprint, seconds, summary}); written by
# the pipeline itself, not a stage artifact of the layout.
SKIPPED = {"probe": PROBE.skipped, "augment": AUGMENT.skipped, "compare": COMPARE.skipped}


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


def not_run(data: RunData, stage: str, art: Artifact) -> dict:
    """The block shown for the output of an optional stage that did not run (or made
    nothing, and said why)."""
    if data.path(art) in data.errors:
        return problem(data.errors[data.path(art)])
    if stage in data.skipped:
        return na(f"not run: {prose(data.skipped[stage])}")
    return na(f"not run: the {stage} stage has not written {data.path(art)}")
