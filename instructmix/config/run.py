"""`RunConfig`, the whole run, and the checks that span its sections.

Each check returns problems as lines "FIELD, FIELD: what is wrong, with the values". They run
when the config is validated (at load time, before Ray starts), and all of a config's
problems are reported together in one error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from instructmix import storage
from instructmix.config.lm_eval_section import lm_eval_problems
from instructmix.config.raise_section import RaiseConfig
from instructmix.config.sections import (
    PICKED,
    TEXT_BACKENDS,
    AugmentConfig,
    CompareConfig,
    EvalConfig,
    ModelConfig,
    PoolConfig,
    ProbesConfig,
    RayConfig,
    Section,
    SelectConfig,
    TestbedConfig,
    TrainConfig,
)
from instructmix.config.sources import eval_scorer_problems

CROSS_FIELD = "cross_field"  # pydantic error type of a failed check of this module
SEQUENTIAL_DEPTHS = 4  # the testbed makes chains of depth 1..4


class RunConfig(Section):
    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    run_dir: str = Field("runs/demo", validate_default=True,
                         description="Where every stage writes its artifacts: a folder, or "
                         "s3://BUCKET/KEY (S3 settings from the AWS_* environment).")
    seed: int = 0
    ray: RayConfig = Field(default_factory=RayConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    raise_: RaiseConfig = Field(default_factory=RaiseConfig, alias="raise")

    @property
    def needs_probes(self) -> bool:
        return self.select.needs_probes or self.compare.needs_probes

    @property
    def arms(self) -> list[str]:
        """Every strategy the run trains: select's and compare's."""
        return [self.select.strategy, *(a.split("+")[0] for a in self.compare.strategies)]

    @property
    def uses_raise(self) -> bool:
        return "raise" in self.arms

    @property
    def held_out(self) -> bool:
        """The probe stage holds pool rows out: to score probes, or RAISE's rewards and
        the picked arms' validation."""
        return self.needs_probes or any(a in PICKED for a in self.arms)

    @property
    def uses_milp(self) -> bool:
        """The milp mixture runs: as the select strategy or as a compare arm."""
        arms = [a.split("+")[0] for a in self.compare.strategies]
        return self.select.strategy == "milp" or "milp" in arms

    @property
    def gpu_requests(self) -> list[str]:
        """The fields that ask Ray for GPUs, of the stages this run runs."""
        asked = {"train.use_gpu": self.train.use_gpu, "eval.use_gpu": self.eval.use_gpu,
                 "probes.gpus_per_trial": self.needs_probes and self.probes.gpus_per_trial,
                 "raise.gpus_per_episode": self.uses_raise and self.raise_.gpus_per_episode,
                 "compare.gpus_per_trial": bool(self.compare.strategies)
                 and self.compare.gpus_per_trial}
        return [f for f, v in asked.items() if v]

    @field_validator("run_dir")
    @classmethod
    def _absolute(cls, v: str) -> str:
        """Workers run in other directories: a relative run_dir is made absolute here; an
        object-storage URI (`s3://BUCKET/KEY`) is kept, without a trailing slash."""
        if storage.is_remote(v):
            return storage.normalize(v)
        if "://" in v:
            raise ValueError("a local folder or s3://BUCKET/KEY (no other scheme)")
        return str(Path(v).expanduser().resolve())

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        problems = cross_field_problems(self)
        if problems:
            raise PydanticCustomError(CROSS_FIELD, "{problems}",
                                      {"problems": "\n".join(problems)})
        return self


def _seqeval_judge(cfg: RunConfig) -> list[str]:
    """eval.seqeval is scored by eval.judge, an LLM: it must exist and generate text."""
    ev = cfg.eval
    if not ev.seqeval:
        return []
    if ev.judge is None:
        return [f"eval.seqeval, eval.judge: eval.seqeval={ev.seqeval!r} is judged by "
                "eval.judge, which is not set; set eval.judge.backend to 'hf' (a local "
                "model) or 'http' (an OpenAI-compatible endpoint)"]
    if ev.judge.backend not in TEXT_BACKENDS:
        return [f"eval.seqeval, eval.judge.backend: eval.seqeval={ev.seqeval!r} needs a judge "
                f"that generates text, but eval.judge.backend={ev.judge.backend!r} has none; "
                f"use one of {list(TEXT_BACKENDS)}"]
    return []


def _http_base_url(cfg: RunConfig) -> list[str]:
    out = []
    for where, gen in (("augment.generator", cfg.augment.generator),
                       ("eval.judge", cfg.eval.judge)):
        if gen is not None and gen.backend == "http" and not gen.base_url:
            out.append(f"{where}.backend, {where}.base_url: {where}.backend='http' needs "
                       f"an endpoint, but {where}.base_url={gen.base_url!r}; set it, e.g. "
                       "http://127.0.0.1:8000/v1")
    return out


def testbed_train_rows(tb: TestbedConfig) -> dict[str, int]:
    """Training rows per category of the synthetic testbed `tb` (what its pool holds)."""
    from instructmix.grammar import TASKS

    rows = {name: tb.items_per_category for name in tb.categories or TASKS}
    if tb.sequential_per_depth:
        rows["sequential"] = SEQUENTIAL_DEPTHS * tb.sequential_per_depth
    if tb.complex_per_level:
        rows.update({f"complex{n}": tb.complex_per_level for n in tb.complex_nodes})
    return rows


def _floors(cfg: RunConfig) -> list[str]:
    """Floors of every category must fit in the budget (milp's floors; no other strategy
    reads them). Checked only where the numbers are known at load time:
    - user files (pool.sources): their categories (and k-means clusters of rows without one)
      are known only once the pool stage has read them, so the pool stage's solver reports it;
    - budget_unit=tokens: the tokens per item are known only once the pool is tokenized.
    A floor is capped by the rows a category has left after the probes' validation split
    (min(valid_per_category, rows // 2)), as the selector caps it."""
    sc = cfg.select
    if not sc.floor_per_category or not cfg.uses_milp:
        return []
    if cfg.pool.sources or sc.budget_unit != "items":
        return []
    rows = testbed_train_rows(cfg.pool.testbed)
    valid = cfg.probes.valid_per_category
    need = sum(min(sc.floor_per_category, n - min(valid, n // 2)) for n in rows.values())
    if need <= sc.budget:
        return []
    which = (f"pool.testbed.categories={cfg.pool.testbed.categories}"
             if cfg.pool.testbed.categories else "pool.testbed.categories=null: every testbed task")
    return [f"select.floor_per_category, select.budget, pool.testbed.categories: floors of "
            f"select.floor_per_category={sc.floor_per_category} items for each of "
            f"{len(rows)} categories ({which}; pool categories {sorted(rows)}) need {need} "
            f"items, more than select.budget={sc.budget}; lower the floor or raise the budget"]


def _robust(cfg: RunConfig) -> list[str]:
    """The robust mixture uses the lower confidence bound of gamma: intervals need >= 2
    probe seeds (milp is its only reader)."""
    if not (cfg.select.robust and cfg.uses_milp) or cfg.probes.seeds >= 2:
        return []
    return [f"select.robust, probes.seeds: select.robust=true uses the lower confidence bound "
            f"of gamma, which needs intervals from probes.seeds >= 2, but probes.seeds="
            f"{cfg.probes.seeds}; raise probes.seeds or set select.robust=false"]


def model_positions(mc: ModelConfig, field: str = "model") -> tuple[int, str] | None:
    """(positions, where that number comes from) of the model `mc` (config section `field`)
    names: max_positions
    for a model built from scratch, or max_position_embeddings / n_positions of the
    config.json of a local HF folder. None: unknown without loading (a hub id)."""
    if mc.path is None:
        return mc.max_positions, f"{field}.max_positions={mc.max_positions}"
    path = Path(mc.path).expanduser() / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for key in ("max_position_embeddings", "n_positions"):
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, int) and value > 0:
            return value, f"{field}.path={mc.path!r} ({key}={value} in {path})"
    return None


def _max_seq_len(cfg: RunConfig) -> list[str]:
    """Every model the run trains (the target, and the probes' proxy) fits train.max_seq_len."""
    models = [("model", cfg.model)]
    if cfg.probes.model is not None and cfg.needs_probes:
        models.append(("probes.model", cfg.probes.model))
    problems = []
    for name, mc in models:
        known = model_positions(mc, name)
        if known is None or cfg.train.max_seq_len <= known[0]:
            continue
        positions, where = known
        field = f"{name}.max_positions" if mc.path is None else f"{name}.path"
        problems.append(f"train.max_seq_len, {field}: train.max_seq_len="
                        f"{cfg.train.max_seq_len} is above the model's {positions} positions "
                        f"({where}); lower train.max_seq_len"
                        + (f" or raise {name}.max_positions" if mc.path is None else ""))
    return problems


def _raise_clusters(cfg: RunConfig) -> list[str]:
    """RAISE takes global batch / clusters rows from every cluster at each step."""
    k = cfg.raise_.clusters
    batch = cfg.train.micro_batch_size * cfg.train.num_workers
    if not cfg.uses_raise or k == "categories" or batch % k == 0:
        return []
    return [f"raise.clusters, train.micro_batch_size, train.num_workers: every step takes "
            f"the same number of rows from each of raise.clusters={k} clusters, but the global "
            f"batch train.micro_batch_size x train.num_workers = {batch} is not a multiple of "
            f"{k}; choose clusters that divide {batch}"]


def _rounds(cfg: RunConfig) -> list[str]:
    """Rounds re-probe around the MILP mixture and move it within the trust region."""
    sc = cfg.select
    if sc.rounds == 1:
        return []
    why = []
    if sc.strategy != "milp":
        why.append(f"select.strategy is {sc.strategy!r}, not 'milp'")
    if sc.trust_region is None:
        why.append("select.trust_region is not set")
    if cfg.probes.design == "random":
        why.append("probes.design is 'random' (rounds re-run the intervention probes)")
    if not why:
        return []
    return [f"select.rounds: rounds={sc.rounds} move the MILP mixture within the trust region "
            f"and re-probe around it, but {'; '.join(why)}; set select.rounds=1 or fix those"]


def _lm_eval(cfg: RunConfig) -> list[str]:
    """lm-eval is installed and knows every task of eval.lm_eval (before Ray starts)."""
    return lm_eval_problems(cfg.eval.lm_eval)


def _eval_scorers(cfg: RunConfig) -> list[str]:
    """Each eval source's scorer has the fields it reads (see `sources.py`)."""
    return eval_scorer_problems(cfg.pool.eval_sources)


CHECKS: tuple[Callable[[RunConfig], list[str]], ...] = (
    _seqeval_judge, _http_base_url, _floors, _robust, _max_seq_len, _raise_clusters, _rounds,
    _lm_eval, _eval_scorers)


def cross_field_problems(cfg: RunConfig) -> list[str]:
    """Every problem the checks across sections find in `cfg` (one line each)."""
    return [line for check in CHECKS for line in check(cfg)]
