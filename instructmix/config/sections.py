"""The sections of a run config: one pydantic model per YAML section.

Every section forbids unknown keys (`extra="forbid"`), so a misspelt or removed key fails
at load time with the dotted path of the field. Checks that span sections live in `run.py`.
Fault injection for tests is not part of the schema: see `instructmix.runtime`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from instructmix.config.lm_eval_section import LmEvalConfig
from instructmix.config.lora import LoraConfig
from instructmix.config.ray_section import RayConfig  # noqa: F401 - re-exported
from instructmix.config.sources import EvalSourceConfig, SourceConfig


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def gpus_field(what: str):
    return Field(0.0, ge=0, le=1, description=f"GPU each {what} asks Ray for, up to 1 (it "
                 "trains on one device; a fraction shares a GPU); > 0: it trains and scores "
                 "on the GPU Ray gives it; 0: on CPU.")


class TestbedConfig(Section):
    items_per_category: int = Field(400, ge=1, description="Training items per category.")
    eval_per_category: int = Field(50, ge=1, description="Held-out eval items per category.")
    categories: list[str] | None = Field(
        None, description="Subset of testbed categories (None: all)."
    )
    sequential_per_depth: int = Field(
        0, ge=0, description="SIT chain items per depth 1-4 added as category 'sequential'."
    )
    complex_nodes: list[int] = Field(
        default_factory=list, description="Tree-Instruct node counts; one category per entry."
    )
    complex_per_level: int = Field(0, ge=0, description="Items per complexity level.")
    sequential_eval_per_depth: int | None = Field(
        None, ge=0, description="Held-out SIT chains per depth (None: sequential_per_depth "
        "// 4). Set it with sequential_per_depth=0 to evaluate chains without training on any.")
    complex_eval_per_level: int | None = Field(
        None, ge=0, description="Held-out items per complexity level (None: "
        "complex_per_level // 4).")
    sequential_ops: list[str] | None = Field(
        None, description="Operations that SIT chains and complexity trees draw from, and "
        "that the rule rewriter adds as prefix/suffix tasks (None: all testbed operations).")

    @field_validator("sequential_ops")
    @classmethod
    def _ops(cls, v: list[str] | None) -> list[str] | None:
        from instructmix.grammar import OPS

        if v is not None and (not v or set(v) - set(OPS)):
            raise ValueError(f"use a non-empty subset of {sorted(OPS)} (or null for all); "
                             f"unknown: {sorted(set(v) - set(OPS))}")
        return v


class DecontaminationConfig(Section):
    enabled: bool = Field(True, description="Reject pool rows sharing an n-gram with an eval "
                          "prompt (kind 'contaminated').")
    ngram: int = Field(13, ge=1, description="Words per n-gram (13: GPT-3, Tulu); eval prompts "
                       "of fewer words are not checked.")
    pool_text: Literal["prompt", "prompt+response"] = Field(
        "prompt+response", description="Text of a pool row searched for eval n-grams.")


class PoolConfig(Section):
    sources: list[SourceConfig] = Field(default_factory=list, description="Input files; "
                                        "empty means the synthetic testbed.")
    testbed: TestbedConfig = Field(default_factory=TestbedConfig)
    eval_sources: list[EvalSourceConfig] = Field(
        default_factory=list, description="Held-out eval files, each with its scorer "
        "(testbed: generated, scored by exact match)."
    )
    embedder: str = Field("minilm", description="'minilm' (offline all-MiniLM-L6-v2 "
                          "package) or an HF model path.")
    tokenizer: str | None = Field(None, description="HF tokenizer path for token counts "
                                  "(None: the embedder's).")
    embed_batch_size: int = Field(64, ge=1)
    embed_actors: int | None = Field(None, ge=1, description="Embedding actors (None: one "
                                     "per CPU of the cluster, fewer when that could leave no "
                                     "node a whole CPU for the tasks feeding them).")
    max_embed_tokens: int = Field(128, ge=8, description="Truncation for embeddings.")
    num_clusters: int = Field(8, ge=1, description="k for k-means categories of rows that "
                              "have none.")
    max_chars: int = Field(20000, ge=1, description="Longer rows are rejected.")
    chunk_bytes: int = Field(32 << 20, ge=1024, description="Bytes of a JSON-lines file per "
                             "read task (memory per task does not grow with the file).")
    block_rows: int = Field(4096, ge=1, description="Rows per block a read task yields.")
    dedupe_rows: int = Field(50_000, ge=1, description="Rows per duplicate-id partition "
                             "(the rows one dedupe task holds).")
    kmeans_sample: int = Field(20000, ge=1, description="Rows (a hash sample) k-means fits on.")
    decontamination: DecontaminationConfig = Field(default_factory=DecontaminationConfig)


class ModelConfig(Section):
    path: str | None = Field(
        None, description="HF model path or hub id; None builds a small model from scratch."
    )

    @field_validator("path")
    @classmethod
    def _local_absolute(cls, v: str | None) -> str | None:
        """Tune trials run in their own directories: an existing relative path is made
        absolute here (a hub id is left as it is)."""
        return str(Path(v).expanduser().resolve()) if v and Path(v).expanduser().exists() else v
    arch: Literal["gpt2", "llama"] = "gpt2"
    n_layer: int = Field(3, ge=1)
    n_embd: int = Field(128, ge=16)
    n_head: int = Field(4, ge=1)
    max_positions: int = Field(256, ge=16)
    tokenizer: Literal["char", "bpe"] = "char"
    vocab_size: int = Field(512, ge=64, description="For the BPE tokenizer.")

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


STRATEGIES = ("iid", "proportional", "regmix", "milp", "ifd", "full", "selfpaced", "raise")
NEEDS_PROBES = ("regmix", "milp")
PICKED = ("selfpaced", "raise")  # strategies that choose every batch while training
AUGMENTATIONS = ("sit", "tree", "control")
TEXT_BACKENDS = ("hf", "http")  # generator backends that produce free text (can judge)


class SelectConfig(Section):
    strategy: Literal[STRATEGIES] = Field(
        "iid", description="iid: uniform sample; proportional: category counts as in the "
        "pool; regmix: best of random mixtures under the probes' regression; milp: the "
        "Beyond-IID mixture (python-mip) from the probes' interaction matrix; ifd: the "
        "budget's rows of highest instruction-following difficulty under the start model; "
        "full: every usable row (ignores the budget); selfpaced / raise: every batch picked "
        "while training (lowest current loss / the RAISE policy) for the steps the budget "
        "buys.")
    curriculum: Literal["none", "dependency"] = Field(
        "none", description="Training order: shuffled, or three dependency phases (needs probes).")
    curriculum_bias: float = Field(3.0, gt=0, description="Phase weight of base/dependent tiers.")
    budget: int = Field(2000, ge=1, description="Items, or tokens when budget_unit=tokens.")
    budget_unit: Literal["items", "tokens"] = "items"
    alpha: Literal["proportions"] | dict[str, float] = Field(
        "proportions", description="Importance of each ability: the pool's proportions, or "
        "target weights per category (missing categories get 0).")
    robust: bool = Field(False, description="Use the lower confidence bound of gamma.")
    trust_region: float | None = Field(
        None, ge=0, le=1, description="Largest share of the budget moved away from the "
        "proportional mixture (with `rounds`: per round, from the last round's mixture; "
        "None: no limit).")
    floor_per_category: int = Field(0, ge=0, description="Minimum items per category.")
    rounds: int = Field(
        1, ge=1, description="milp: rounds of probing and solving. Round 1 probes around D0 "
        "and solves within the trust region around the proportional mixture; each further "
        "round probes around the last round's mixture (D0 with its shares), re-estimates Γ "
        "and moves again within the trust region, until `rounds` or until a round's move "
        "gains less than `round_tolerance` of the objective (needs trust_region and the "
        "intervention probes).")
    round_tolerance: float = Field(
        0.01, ge=0, description="Stop the rounds when a move improves the objective, under "
        "the new Γ, by less than this share of its value at the current mixture.")
    regmix_samples: int = Field(20000, ge=1, description="Random mixtures scored by regmix.")

    @property
    def needs_probes(self) -> bool:
        return self.strategy in NEEDS_PROBES or self.curriculum == "dependency"


class ProbesConfig(Section):
    model: ModelConfig | None = Field(
        None, description="A proxy model the probes train instead of the target (same fields "
        "as `model`; e.g. a smaller from-scratch model, or a small pretrained one): probes "
        "then cost a fraction of the target's compute. None: the probes train the target "
        "model.")
    design: Literal["intervention", "random", "both"] = Field(
        "both", description="intervention: base mixture D0 plus one probe per category "
        "(gamma); random: Dirichlet mixtures (regression); both: all probes, gamma from the "
        "interventions, regression fitted on every probe.")
    base_per_category: int = Field(100, ge=1, description="Items per category in D0.")
    add_per_category: int = Field(100, ge=1, description="Items a probe adds to D0.")
    random_mixtures: int = Field(6, ge=0, description="Random-mixture probes (design b).")
    seeds: int = Field(2, ge=1, description="Seeds per intervention probe (CIs need >= 2).")
    valid_per_category: int = Field(
        40, ge=1, description="Pool rows per category held out to score probes (never "
        "selected for training; the eval set is never used to choose data).")
    epochs: int = Field(2, ge=1)
    score: Literal["loss", "token_accuracy"] = Field(
        "loss", description="Score s_i of a probe on validation items of category i: negative "
        "response loss, or response token accuracy (teacher-forced; bounded, comparable "
        "across categories, and flat for answers a model cannot learn).")
    warm_start_epochs: int = Field(
        0, ge=0, description="Train the model on D0 for this many epochs first (one trial "
        "per seed) and start that seed's probes from it: probes then measure the effect of "
        "extra items on a model that already knows the output format (0: from the start).")
    micro_batch_size: int = Field(32, ge=1)
    lr: float | None = Field(None, gt=0, description="None: train.lr.")
    lora: LoraConfig | None = Field(
        None, description="Probe with LoRA adapters (on `probes.model` or the target): "
        "the cheap probe for a pretrained model. None: every weight (train.lora does not "
        "apply to probes).")
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = gpus_field("trial")
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="None: as many as the cluster's CPUs (and GPUs) fit.")
    max_failures: int = Field(1, ge=0, description="Retries of a failed trial.")
    ci: float = Field(0.9, gt=0, lt=1, description="Confidence level of the intervals.")
    min_self_effect: float = Field(
        0.25, ge=0, description="A gamma row is identified only if training on its category "
        "improves it by >= this x the median positive own effect; else (gamma divides by that "
        "effect) the ability gets no mixture weight instead of swamping it (0: any > 0).")
    dag_threshold: float = Field(
        0.1, ge=0, description="Least effect of a dependency edge, in gamma units: the gamma "
        "asymmetry (asymmetry estimator), or what j's block first does for i / what a "
        "category's own intervention items typically do for it (order estimator).")
    dependencies: Literal["order", "asymmetry"] = Field(
        "order", description="Estimator of the dependency DAG. order: order probes (j's "
        "items then i's against a neutral mix then i's, matched rows and steps), both "
        "directions of the pairs with gamma_ij > 0 or gamma_ji > 0; falls back to asymmetry, "
        "with a note, when the intervention design did not run or no pair passes. "
        "asymmetry: gamma_ij - gamma_ji.")
    max_order_pairs: int = Field(
        20, ge=2, description="Most directed pairs (j -> i) order-probed per seed: both "
        "directions of the candidate pairs with the largest intervention effect first; each "
        "costs one probe of 2 x add_per_category rows x epochs (plus one alone arm per i).")


class CompareConfig(Section):
    strategies: list[str] = Field(
        default_factory=list, description="Arms trained side by side at the select budget "
        "(equal optimizer steps; `full` trains every usable row): 'STRATEGY', optionally "
        "'+curriculum' and one of '+sit', '+tree', '+control' (the "
        "selection augmented by `augment`, token-matched to it), e.g. milp+curriculum, iid+sit.")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = gpus_field("arm's trial")
    equal_steps: bool = Field(
        True, description="Augmented arms scale their global batch by their rows / the "
        "selection's rows, so equal tokens also means equal optimizer steps and tokens per "
        "step (as packed batches would); False: every arm uses train's batch of rows.")

    @field_validator("strategies")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for s in v:
            name, *extras = s.split("+")
            augs = [e for e in extras if e in AUGMENTATIONS]
            if (name not in STRATEGIES or len(augs) > 1 or len(set(extras)) < len(extras)
                    or set(extras) - {"curriculum", *AUGMENTATIONS}):
                augs = ", ".join("+" + a for a in AUGMENTATIONS)
                raise ValueError(f"unknown arm {s!r}; use one of {list(STRATEGIES)}, "
                                 f"optionally with +curriculum and one of {augs}")
        return v

    @property
    def needs_probes(self) -> bool:
        return any(s.split("+")[0] in NEEDS_PROBES or "+curriculum" in s for s in self.strategies)

    @staticmethod
    def augmentation(arm: str) -> str | None:
        """The augmentation an arm trains on ('sit', 'tree', 'control'), or None."""
        return next((e for e in arm.split("+")[1:] if e in AUGMENTATIONS), None)


class TrainConfig(Section):
    num_workers: int = Field(2, ge=1, description="Ray Train workers.")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    deepspeed: bool = Field(True, description="DeepSpeed ZeRO engine; False: plain torch DDP.")
    zero_stage: Literal[0, 1, 2, 3] = 2
    precision: Literal["fp32", "bf16"] = "fp32"
    micro_batch_size: int = Field(32, ge=1, description="Rows per worker per step.")
    epochs: int = Field(3, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps.")
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_seq_len: int = Field(128, ge=8)
    checkpoint_every: int = Field(100, ge=1, description="Steps between checkpoints.")
    log_every: int = Field(10, ge=1)
    torch_threads: int = Field(1, ge=1, description="torch intra-op threads per worker.")
    max_failures: int = Field(1, ge=0, description="Worker-group restarts (resume) allowed.")
    log_batch_ids: bool = Field(False, description="Record the ids of every global batch.")
    lora: LoraConfig | None = Field(
        None, description="Train LoRA adapters (the final run, compare arms and RAISE "
        "episodes); None: every weight.")


class GeneratorConfig(Section):
    backend: Literal["rules", "hf", "http"] = Field(
        "rules", description="rules: the testbed's exact rewriter; hf: a local HF causal LM "
        "on a Ray Data actor pool; http: an OpenAI-compatible chat-completions endpoint.")
    model_path: str | None = Field(
        None, description="hf: HF model path or hub id (None: the run's model).")
    base_url: str | None = Field(None, description="http: e.g. http://127.0.0.1:8000/v1")
    model: str = Field("default", description="http: the model name sent to the endpoint.")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="http: environment variable holding the API key "
        "(unset variable: no key is sent).")
    timeout_s: float = Field(60.0, gt=0, description="http: seconds per request.")
    max_retries: int = Field(4, ge=0, description="http: retries of a failed request.")
    backoff_s: float = Field(0.5, ge=0, description="http: first retry delay (doubles).")
    concurrency: int = Field(4, ge=1, description="http: requests in flight at most.")
    cache: bool = Field(True, description="Cache completions on disk: a re-run makes no "
                        "repeated calls.")
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1, description="hf: prompts per generate() call.")
    actors: int | None = Field(None, ge=1, description="hf: actor pool size (None: CPUs).")


class TreeConfig(Section):
    nodes: int = Field(3, ge=1, description="Tree nodes added per round.")
    rounds: int = Field(1, ge=1, description="Rounds of +nodes (6 nodes = 2 rounds of 3).")
    min_added_words: int = Field(
        12, ge=0, description="A rewrite must be at least this many words longer.")
    max_words: int = Field(100, ge=1, description="A rewrite may have at most this many words.")
    banned_words: list[str] = Field(
        default_factory=lambda: ["node", "nodes", "tree", "rewritten instruction",
                                 "new instruction"],
        description="Leaked procedure words: a rewrite containing one is rejected.")


class SitConfig(Section):
    max_depth: int = Field(4, ge=1, le=8, description="Longest chain (sub-tasks) made.")
    depth_weights: list[float] | None = Field(
        None, description="Weights of target depths 1..max_depth (None: uniform).")
    translation_field: str | None = Field(
        None, description="A meta key holding the instruction in another language: such rows "
        "become 'translate then answer' chains.")

    @model_validator(mode="after")
    def _weights(self) -> SitConfig:
        w = self.depth_weights
        if w is not None and (len(w) != self.max_depth or min(w) < 0 or sum(w) <= 0):
            raise ValueError(f"depth_weights needs {self.max_depth} weights (one per depth "
                             f"1..max_depth), all >= 0 with a positive sum; got {w}")
        return self


class AugmentConfig(Section):
    train_on: Literal["plain", "sit", "tree", "control"] = Field(  # plain + AUGMENTATIONS
        "plain", description="What the train stage trains on: the selection as is, or its "
        "SIT / Tree-Instruct / control version, token-matched to the selection.")
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    tree: TreeConfig = Field(default_factory=TreeConfig)
    sit: SitConfig = Field(default_factory=SitConfig)
    judge: bool = Field(False, description="Measure only: the generator judges its own "
                        "rewrites yes/no, counted against the rule checks that decide.")

    @model_validator(mode="after")
    def _judge(self) -> AugmentConfig:
        if self.judge and self.generator.backend not in TEXT_BACKENDS:
            raise ValueError(f"augment.judge needs generator.backend in {TEXT_BACKENDS}")
        return self


class EvalConfig(Section):
    use_gpu: bool = Field(False, description="One scoring task per GPU instead of per CPU.")
    max_new_tokens: int = Field(24, ge=1)
    batch_size: int = Field(64, ge=1, description="Rows per scoring batch: in the eval stage, "
                            "and in probe and compare trials.")
    seqeval: str | None = Field(
        None, description="A SeqEval file (seqEval.json: instruction, iteration): the trained "
        "model answers every prompt and eval.judge scores the following rate by depth.")
    seqeval_limit: int | None = Field(None, ge=1, description="Score at most this many.")
    judge: GeneratorConfig | None = Field(
        None, description="Judge for eval.seqeval: a generator with backend 'hf' or 'http' "
        "(required when eval.seqeval is set).")
    lm_eval: LmEvalConfig | None = Field(
        None, description="lm-evaluation-harness tasks run on the trained model (lm-eval extra).")
