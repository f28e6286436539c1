"""The run directory: every artifact of a run, the stage that owns it, and how it is read
and written.

Stages never spell paths: they name an artifact (`POOL.stats`) and ask a `RunLayout` for
its path, or to read or write it. A layout opened for a stage (`RunLayout(dir, "pool")`)
refuses to write another stage's artifacts. JSON is written strictly: NaN and ±inf become
null and the paths of the replaced numbers are listed under `_nonfinite_as_null`;
`read_json` puts them back.

`run_dir` may be object storage (`s3://bucket/key`, instructmix.storage): the layout then
works in a local mirror of it (`root`); `pull` fetches the run, `write_marker` sends the
stage folder and then the marker, and Ray writes the `RAY_STORAGE` folders straight to the
bucket (they are never mirrored).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from instructmix import storage

log = logging.getLogger("instructmix")
NONFINITE_KEY = "_nonfinite_as_null"
POOL_COLUMNS = ["id", "category", "messages", "answer", "n_tokens", "source", "meta"]
MARKERS = {"done": "_DONE.json", "started": "_STARTED.json"}  # the pipeline's, per stage


@dataclass(frozen=True)
class Artifact:
    stage: str  # the stage that writes it ("run": the pipeline itself)
    name: str  # path under the stage folder
    kind: str  # json | jsonl | parquet | dataset (folder of Parquet shards) | dir | text | torch
    doc: str


def _a(stage: str, name: str, kind: str, doc: str) -> Artifact:
    return Artifact(stage, name, kind, doc)


class RUN:
    config = _a("run", "run_config.json", "json", "the resolved config of the last run")
    cache = _a("run", "cache", "dir", "generator completions, kept across stage re-runs")


class POOL:
    shards = _a("pool", "shards", "dataset", "accepted rows + category, n_tokens, embedding")
    eval = _a("pool", "eval.parquet", "parquet", "accepted held-out eval rows")
    rejected = _a("pool", "rejected.jsonl", "jsonl", "every rejected row: origin, kind, reason")
    stats = _a("pool", "stats.json", "json", "counts that add up, by kind, category, source")
    ground_truth = _a("pool", "ground_truth.json", "json", "planted relations (testbed)")


class MODEL:
    info = _a("model", "model.json", "json", "path of the model to train, built or named")
    hf = _a("model", "hf", "dir", "the model built from scratch, HF format")


class PROBE:
    skipped = _a("probe", "skipped.json", "json", "why the stage made nothing")
    validation_ids = _a("probe", "validation_ids.json", "json", "rows held out to score probes")
    sets = _a("probe", "sets", "dir", "each trial's training rows and the validation rows")
    warm = _a("probe", "warm", "dir", "warm-start models, one per probe seed")
    proxy_info = _a("probe", "proxy.json", "json", "the probes' proxy model (probes.model)")
    proxy_hf = _a("probe", "proxy", "dir", "the proxy built from scratch, HF format")
    tune = _a("probe", "tune", "dir", "Ray Tune's experiment folders")
    probes = _a("probe", "probes.json", "json", "every trial: mixture, scores, cost")
    interactions = _a("probe", "interactions.json", "json", "Γ with intervals, regression")
    regression = _a("probe", "regression_shares.json", "json", "RegMix fit on mixture shares")
    dependencies = _a("probe", "dependencies.json", "json", "DAG and tiers")
    cost = _a("probe", "cost.json", "json", "tokens and seconds the probes spent")
    rounds = _a("probe", "rounds.json", "json", "select.rounds > 1: each round's centre, Γ, "
                "mixture, objective and cost")


class POLICY:
    skipped = _a("policy", "skipped.json", "json", "why the stage made nothing")
    learner = _a("policy", "learner.pt", "torch", "RAISE policy + PPO learner state (resumes)")
    episodes = _a("policy", "episodes", "dir", "each episode's picker and trajectory")
    tune = _a("policy", "tune", "dir", "Ray Tune's experiment folders, one per round")
    rounds = _a("policy", "rounds.json", "json", "per round: episode returns, PPO stats")
    cost = _a("policy", "cost.json", "json", "steps, tokens and seconds the episodes spent")


class SELECT:
    selection = _a("select", "selection.parquet", "parquet", "every pool id: selected or why not")
    train = _a("select", "train.parquet", "parquet", "selected rows in training order")
    stream = _a("select", "stream.parquet", "parquet", "every pass of the run in training "
                "order (the dependency curriculum over the whole run)")
    mixture = _a("select", "mixture.json", "json", "counts, solver facts, curriculum phases")


class AUGMENT:
    skipped = _a("augment", "skipped.json", "json", "why the stage made nothing")
    items = _a("augment", "items.parquet", "parquet", "every item made, token-matched or not")
    rejected = _a("augment", "rejected.jsonl", "jsonl", "rows the backend could not augment")
    train = _a("augment", "train.parquet", "parquet", "token-matched items in selection order")
    stats = _a("augment", "stats.json", "json", "counts, reasons, tokens, depths, modes")
    judged = _a("augment", "judge.jsonl", "jsonl", "augment.judge: judge vs rule per rewrite")


class TRAIN:
    ray_results = _a("train", "ray_results", "dir", "Ray Train's run folder (checkpoints)")
    model = _a("train", "model", "dir", "the trained model, HF safetensors")
    history = _a("train", "history.json", "json", "loss and throughput by step")
    batch_ids = _a("train", "batch_ids.json", "json", "ids of every global batch (optional)")
    picker = _a("train", "picker.json", "json", "a picked run: validation loss by step")


class EVAL:
    results = _a("eval", "results.json", "json", "scores per category, depth, SeqEval")
    predictions = _a("eval", "predictions.jsonl", "jsonl", "every scored row")
    seqeval = _a("eval", "seqeval.jsonl", "jsonl", "SeqEval responses and verdicts")


class COMPARE:
    skipped = _a("compare", "skipped.json", "json", "why the stage made nothing")
    sets = _a("compare", "sets", "dir", "every arm's training rows (and augmentation)")
    tune = _a("compare", "tune", "dir", "Ray Tune's experiment folder")
    results = _a("compare", "results.json", "json", "every cell and every arm over seeds")
    table = _a("compare", "table.md", "text", "the comparison as a markdown table")


class REPORT:
    json = _a("report", "report.json", "json", "everything the report shows")
    html = _a("report", "report.html", "text", "self-contained report page")


# Folders Ray Train / Tune write themselves: in the bucket, not the mirror, when remote.
RAY_STORAGE = (TRAIN.ray_results, PROBE.tune, POLICY.tune, COMPARE.tune)
GROUPS = (RUN, POOL, MODEL, PROBE, POLICY, SELECT, AUGMENT, TRAIN, EVAL, COMPARE, REPORT)
ARTIFACTS = [a for group in GROUPS for a in vars(group).values() if isinstance(a, Artifact)]


def strict_json(obj: Any) -> tuple[Any, list[str]]:
    """(a copy with NaN/±inf as None, the paths of the replaced numbers)."""
    replaced: list[str] = []

    def clean(x, path: str):
        if isinstance(x, float) and not math.isfinite(x):
            replaced.append(f"{path} = {x}")
            return None
        if isinstance(x, dict):
            return {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v, f"{path}[{k}]") for k, v in enumerate(x)]
        return x

    return clean(obj, ""), replaced


def dumps(obj: Any, indent: int | None = 1) -> str:
    """Strict JSON text (see module doc); numpy scalars and paths as their plain values."""
    clean, replaced = strict_json(json.loads(json.dumps(obj, default=_plain)))
    if replaced and isinstance(clean, dict):
        clean[NONFINITE_KEY] = replaced
    return json.dumps(clean, indent=indent, allow_nan=False)


def restore_nonfinite(obj: Any) -> Any:
    """The inverse of `dumps`: the numbers listed under `_nonfinite_as_null` ("path = inf")
    put back, the list itself dropped."""
    if not isinstance(obj, dict) or not isinstance(obj.get(NONFINITE_KEY), list):
        return obj
    found = {}
    for entry in obj[NONFINITE_KEY]:
        m = re.fullmatch(r"(.*) = (-?inf|nan)", str(entry))
        if m:
            found[m.group(1)] = float(m.group(2))

    def put(x, path: str):
        if x is None and path in found:
            return found[path]
        if isinstance(x, dict):
            return {k: put(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, list):
            return [put(v, f"{path}[{k}]") for k, v in enumerate(x)]
        return x

    return put({k: v for k, v in obj.items() if k != NONFINITE_KEY}, "")


def _plain(x):
    if hasattr(x, "item"):  # numpy scalar
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


class RunLayout:
    """Paths and I/O of one run directory; `stage` (when given) may write only its own
    artifacts."""

    def __init__(self, run_dir: str | Path, stage: str | None = None):
        remote = storage.is_remote(run_dir)
        self.uri = storage.normalize(str(run_dir)) if remote else None  # object storage
        self.root = storage.mirror_of(self.uri) if remote else Path(run_dir)
        self.stage = stage

    @property
    def location(self) -> str:
        """Where the run lives: its URI, or its folder."""
        return self.uri or str(self.root)

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def path(self, art: Artifact) -> Path:
        return self.root / art.name if art.stage == "run" else self.root / art.stage / art.name

    def exists(self, art: Artifact) -> bool:
        return self.path(art).exists()

    def writable(self, art: Artifact) -> Path:
        """The artifact's path, after checking this layout's stage owns it."""
        if self.stage is not None and art.stage not in (self.stage, "run"):
            raise PermissionError(f"stage {self.stage!r} may not write {art.stage}/{art.name} "
                                  f"(owned by stage {art.stage!r})")
        path = self.path(art)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # -- readers ---------------------------------------------------------------------
    def _need(self, art: Artifact) -> Path:
        path = self.path(art)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: stage {art.stage!r} has not written "
                                    f"it ({art.doc}); run that stage first")
        return path

    def read_json(self, art: Artifact, default: Any = ...) -> Any:
        """The artifact as written: NaN/±inf that the strict writer nulled come back."""
        if default is not ... and not self.path(art).is_file():
            return default
        return restore_nonfinite(json.loads(self._need(art).read_text()))

    def read_jsonl(self, art: Artifact) -> list[dict]:
        """Every line of a JSONL artifact; a malformed line raises naming the file and line."""
        rows = []
        for k, line in enumerate(self._need(art).read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise ValueError(f"{self.path(art)}:{k}: not valid JSON ({e})") from None
        return rows

    def read_table(self, art: Artifact, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self._need(art), columns=columns)

    def read_text(self, art: Artifact) -> str:
        return self._need(art).read_text()

    # -- writers ---------------------------------------------------------------------
    def write_json(self, art: Artifact, obj: Any, indent: int | None = 1) -> Path:
        path = self.writable(art)
        path.write_text(dumps(obj, indent))
        return path

    def write_jsonl(self, art: Artifact, rows) -> Path:
        path = self.writable(art)
        with open(path, "w") as f:
            for row in rows:
                f.write(dumps(row, None) + "\n")
        return path

    def write_table(self, art: Artifact, table: pa.Table) -> Path:
        path = self.writable(art)
        pq.write_table(table, path)
        return path

    def write_dataset(self, art: Artifact, ds) -> int:
        """A Ray Data dataset as the artifact's folder of Parquet shards; returns the rows in
        the files written (from their footers). Remote run: the write tasks, on any node,
        write to the bucket (the mirror is on the driver's disk only), then the mirror
        fetches the shards."""
        path = self.writable(art)
        shutil.rmtree(path, ignore_errors=True)  # an earlier attempt's shards
        uri = storage.remote_of(path)
        if uri is None:
            ds.write_parquet(str(path))
        else:
            storage.delete(uri)
            fs, key = storage.filesystem(uri)
            ds.write_parquet(key, filesystem=fs)
            storage.pull(uri, path)
        return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(path.glob("*.parquet")))

    def write_text(self, art: Artifact, text: str) -> Path:
        path = self.writable(art)
        path.write_text(text)
        return path

    def write_chunks(self, art: Artifact, chunks) -> Path:
        """The artifact as the bytes of `chunks`, one after the other."""
        path = self.writable(art)
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        return path

    # -- the pipeline's resume markers ------------------------------------------------
    def marker_path(self, stage: str, kind: str) -> Path:
        return self.stage_dir(stage) / MARKERS[kind]

    def read_marker(self, stage: str, kind: str) -> dict | None:
        path = self.marker_path(stage, kind)
        return json.loads(path.read_text()) if path.is_file() else None

    def write_marker(self, stage: str, kind: str, record: dict) -> None:
        """Remote run: the stage folder is sent first, the marker after it."""
        self.push(stage)
        path = self.marker_path(stage, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(record, 2))
        self.push(stage)

    def remove_marker(self, stage: str, kind: str) -> None:
        self.marker_path(stage, kind).unlink(missing_ok=True)
        if self.uri:
            storage.delete(f"{self.uri}/{stage}/{MARKERS[kind]}")

    # -- object storage (remote run_dir) ---------------------------------------------
    def _ray_folders(self, stage: str | None) -> tuple[str, ...]:
        """RAY_STORAGE folders relative to the stage folder (or the root)."""
        return tuple(a.name if stage else f"{a.stage}/{a.name}" for a in RAY_STORAGE
                     if stage in (None, a.stage))

    def pull(self) -> None:
        """Remote run: check the bucket, then make the mirror equal to it."""
        if self.uri:
            storage.check(self.uri)
            self.root.mkdir(parents=True, exist_ok=True)
            n = storage.pull(self.uri, self.root, self._ray_folders(None))
            if n:
                log.info("pulled %d files of %s into %s", n, self.uri, self.root)

    def push(self, stage: str | None = None) -> None:
        """Remote run: send the run's own files (config, cache) and the stage folder."""
        if not self.uri:
            return
        stages = tuple(sorted({a.stage for a in ARTIFACTS} - {"run"}))
        storage.push(self.root, self.uri, stages)
        if stage is not None and self.stage_dir(stage).is_dir():
            storage.push(self.stage_dir(stage), f"{self.uri}/{stage}", self._ray_folders(stage))

    def clear(self, stage: str) -> None:
        """Delete the stage folder (and its objects, Ray's included, when remote)."""
        if self.stage_dir(stage).exists():
            shutil.rmtree(self.stage_dir(stage))
        if self.uri:
            storage.delete(f"{self.uri}/{stage}")

    # -- facts derived from artifacts ------------------------------------------------
    def model_record(self, art: Artifact) -> dict:
        """A model stage's record (path, built, parameters), the path of a built model
        resolved in this run folder."""
        record = self.read_json(art)
        if record.get("built"):
            record["path"] = str(self.root / record["path"])
        return record

    def model_path(self) -> str:
        """The model the run trains: built by the model stage or named in the config."""
        return self.model_record(MODEL.info)["path"]

    def probe_model(self) -> dict:
        """The model the probes train: the proxy (`probes.model`) when the probe stage built
        one, else the target; its path and parameter count."""
        return self.model_record(PROBE.proxy_info if self.exists(PROBE.proxy_info)
                                 else MODEL.info)

    def read_pool(self) -> pa.Table:
        """The accepted pool rows, sorted by id (a sample then depends on the seed, not on
        the shards' order)."""
        return self.read_table(POOL.shards, POOL_COLUMNS).sort_by("id")

    def validation_ids(self) -> set[str]:
        """Pool ids the probe stage held out to score probes (never trained on)."""
        return set(self.read_json(PROBE.validation_ids, []))

    def train_rows(self, train_on: str) -> tuple[Path, bool]:
        """What the train stage trains on: the selection (as the whole run's stream when
        the select stage wrote one), or its augmentation; and whether it is that stream
        (every pass already laid out: train one pass)."""
        if train_on != "plain":
            return self.path(AUGMENT.train), False
        if self.exists(SELECT.stream):
            return self.path(SELECT.stream), True
        return self.path(SELECT.train), False
