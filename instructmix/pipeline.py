"""Stage order, run directory, fingerprints and resume.

Each stage writes into `run_dir/<stage>/` through a `RunLayout` (instructmix.layout). A
stage's fingerprint hashes the config sections it reads plus the fingerprints of the
stages it reads from. On success it writes a done marker (fingerprint, seconds, summary);
a re-run with the same fingerprint skips it. A stage that started but did not finish (a
started marker with the same fingerprint) keeps its folder so it can resume (training
resumes from its last checkpoint); a stage whose fingerprint changed is cleared and run
afresh.

A remote `run_dir` (`s3://…`) is pulled into its local mirror before each stage and every
stage folder is sent back when the stage ends, failed or done (instructmix.layout).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from instructmix.config import RunConfig
from instructmix.layout import RUN, RunLayout

log = logging.getLogger("instructmix")


@dataclass(frozen=True)
class Stage:
    name: str
    reads: tuple[str, ...]  # stages whose artifacts it reads
    sections: tuple[str, ...]  # config sections that change its output
    run: Callable[[RunConfig, RunLayout], dict]  # (config, its layout) -> summary
    needs_ray: bool = True
    extra: Callable[[RunConfig], dict] | None = None  # more fingerprint inputs


def _probe_inputs(cfg: RunConfig) -> dict:
    """The probe stage runs only when a strategy needs it, and its trials take these
    training settings from `train` (the rest of `train` does not change them)."""
    keys = {"lr", "weight_decay", "warmup_steps", "max_seq_len"}
    out = {"needed": cfg.needs_probes, "held_out": cfg.held_out,
           "train": cfg.train.model_dump(include=keys)}
    if cfg.select.rounds > 1:  # later rounds probe around the MILP mixture
        out["rounds"] = cfg.select.model_dump(mode="json", exclude={"curriculum",
                                                                     "curriculum_bias",
                                                                     "regmix_samples"})
    return out


def _policy_inputs(cfg: RunConfig) -> dict:
    """Only a run with a raise arm trains a policy; its episodes train like the target run."""
    if not cfg.uses_raise:
        return {"needed": False}
    keys = {"lr", "weight_decay", "warmup_steps", "max_seq_len", "micro_batch_size",
            "num_workers"}
    return {"needed": True, "train": cfg.train.model_dump(include=keys)}


def _train_inputs(cfg: RunConfig) -> dict:
    """A picked target run also depends on how it picks (`raise`)."""
    from instructmix.config import PICKED

    picked = cfg.select.strategy in PICKED
    return {"raise": cfg.raise_.model_dump(mode="json") if picked else None}


RUNTIME_KNOBS = {"timeout_s", "max_retries", "backoff_s", "concurrency", "cache", "actors",
                 "batch_size", "api_key_env"}  # how a generator is called, not what it makes


def _augmentation(cfg: RunConfig) -> dict:
    aug = cfg.augment.model_dump(mode="json")
    aug["generator"] = {k: v for k, v in aug["generator"].items() if k not in RUNTIME_KNOBS}
    return aug


def _augment_inputs(cfg: RunConfig) -> dict:
    """With `train_on: plain` the stage makes nothing, whatever the rest of the section says."""
    return {"train_on": "plain"} if cfg.augment.train_on == "plain" else _augmentation(cfg)


def _compare_inputs(cfg: RunConfig) -> dict:
    """The eval settings its trials score with, `augment` only for augmented arms and
    `raise` only for picked arms."""
    augmented = any(cfg.compare.augmentation(s) for s in cfg.compare.strategies)
    picked = any(a.split("+")[0] in ("selfpaced", "raise") for a in cfg.compare.strategies)
    return {"eval": cfg.eval.model_dump(include={"max_new_tokens", "batch_size"}),
            "augment": _augmentation(cfg) if augmented else None,
            "raise": cfg.raise_.model_dump(mode="json") if picked else None}


def _lazy(module: str, name: str) -> Callable[[RunConfig, RunLayout], dict]:
    """A stage function imported only when the stage runs (keeps `--help` and config
    errors fast, before torch/Ray are imported)."""

    def run(cfg: RunConfig, layout: RunLayout) -> dict:
        return getattr(importlib.import_module(module), name)(cfg, layout)

    return run


STAGES: list[Stage] = [
    Stage("pool", (), ("seed", "pool"), _lazy("instructmix.data.pool", "run_pool")),
    Stage("model", ("pool",), ("seed", "model"),
          _lazy("instructmix.training.model_factory", "run_model"), needs_ray=False),
    Stage("probe", ("pool", "model"), ("seed", "probes"),
          _lazy("instructmix.experiments.probe_stage", "run_probes"), extra=_probe_inputs),
    Stage("policy", ("pool", "model", "probe"), ("seed", "raise"),
          _lazy("instructmix.experiments.policy_stage", "run_policy"), extra=_policy_inputs),
    Stage("select", ("pool", "probe"), ("seed", "select"),
          _lazy("instructmix.selectors.select_stage", "run_select"), needs_ray=False),
    Stage("augment", ("model", "select"), ("seed",),
          _lazy("instructmix.augment.augment_stage", "run_augment"), extra=_augment_inputs),
    Stage("train", ("model", "probe", "policy", "select", "augment"), ("seed", "train"),
          _lazy("instructmix.experiments.target", "run_target"), extra=_train_inputs),
    Stage("eval", ("train", "pool"), ("eval",),
          _lazy("instructmix.evaluation.eval_stage", "run_eval")),
    Stage("compare", ("pool", "model", "probe", "policy"), ("seed", "select", "train", "compare"),
          _lazy("instructmix.experiments.compare", "run_compare"), extra=_compare_inputs),
    Stage("report", ("pool", "probe", "policy", "select", "augment", "train", "eval",
                     "compare"), (), _lazy("instructmix.report", "run_report"), needs_ray=False),
]
BY_NAME = {s.name: s for s in STAGES}


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(cfg: RunConfig, stage: Stage, layout: RunLayout) -> str:
    data = cfg.model_dump(mode="json")
    parts = {s: data[s] for s in stage.sections}
    if stage.extra is not None:
        parts["extra"] = stage.extra(cfg)
    for dep in stage.reads:
        done = layout.read_marker(dep, "done")
        if done is None:
            raise RuntimeError(f"stage {stage.name!r} needs stage {dep!r} to have finished "
                               f"in {layout.root}; run it first (instructmix {dep} CONFIG)")
        parts[f"stage:{dep}"] = done["fingerprint"]
    return _hash(parts)


def _prepare_dir(layout: RunLayout, name: str, fp: str, force: bool) -> bool:
    """Clear the stage folder unless it holds a resumable attempt; True when resuming."""
    out = layout.stage_dir(name)
    started = layout.read_marker(name, "started")
    resumable = started is not None and started["fingerprint"] == fp
    if force or not resumable:
        layout.clear(name)  # the folder, and its objects when run_dir is remote
    out.mkdir(parents=True, exist_ok=True)
    layout.remove_marker(name, "done")
    layout.write_marker(name, "started", {"fingerprint": fp})
    return resumable and not force


def _keep_partial(layout: RunLayout, name: str) -> None:
    """A failed stage's folder goes to the bucket too (a rerun elsewhere resumes it)."""
    try:
        layout.push(name)
    except Exception as e:  # the stage's own error matters more
        log.warning("[%s] could not send the stage folder to %s: %s", name, layout.location, e)


def run_stage(cfg: RunConfig, stage: Stage, force: bool = False) -> dict:
    layout = RunLayout(cfg.run_dir, stage.name)
    layout.pull()  # remote run_dir: the mirror made equal to the bucket (before Ray starts)
    fp = fingerprint(cfg, stage, layout)
    done = layout.read_marker(stage.name, "done")
    if done and done["fingerprint"] == fp and not force:
        log.info("[%s] up to date (fingerprint %s): skipped", stage.name, fp)
        return dict(done, skipped=True)
    if stage.needs_ray:  # before the stage's folder is touched
        from instructmix.cluster import ensure_ray, require_gpus

        ensure_ray(cfg.ray.address, cfg.ray.num_cpus, cfg.ray.dashboard, cfg.ray.dashboard_host)
        require_gpus(cfg.gpu_requests)  # every stage's, before the first one runs
    resuming = _prepare_dir(layout, stage.name, fp, force)
    log.info("[%s] running%s -> %s", stage.name, " (resuming)" if resuming else "",
             layout.stage_dir(stage.name))
    t0 = time.time()
    try:
        summary = stage.run(cfg, layout)
    except BaseException:
        _keep_partial(layout, stage.name)
        raise
    record = {"fingerprint": fp, "seconds": round(time.time() - t0, 1), "summary": summary}
    layout.write_marker(stage.name, "done", record)
    log.info("[%s] done in %.1f s: %s", stage.name, record["seconds"], summary)
    return record


def run_all(cfg: RunConfig, stop_after: str | None = None) -> dict:
    layout = RunLayout(cfg.run_dir)
    layout.pull()
    layout.write_text(RUN.config, cfg.model_dump_json(indent=2))
    layout.push()
    results = {}
    for stage in STAGES:
        results[stage.name] = run_stage(cfg, stage)
        if stage.name == stop_after:
            break
    return results
