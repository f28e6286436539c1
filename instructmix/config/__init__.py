"""One pydantic config is the source of truth for a run.

- `sections.py`: one model per YAML section, each with `extra="forbid"`, so a misspelt key
  fails at load time with the dotted path of the bad field, before Ray starts;
- `sources.py`: pool and eval sources (each eval source's scorer) and the check of the
  scorer settings;
- `run.py`: `RunConfig`, the whole run, and the checks across its sections;
- `loading.py`: `load_config` (YAML file + `--set` overrides), error messages, the schema.
"""

from instructmix.config.lm_eval_section import LmEvalConfig
from instructmix.config.loading import (
    REMOVED,
    ConfigError,
    apply_override,
    format_errors,
    json_schema,
    load_config,
)
from instructmix.config.raise_section import RaiseConfig
from instructmix.config.run import (
    RunConfig,
    cross_field_problems,
    model_positions,
    testbed_train_rows,
)
from instructmix.config.sections import (
    AUGMENTATIONS,
    NEEDS_PROBES,
    PICKED,
    STRATEGIES,
    TEXT_BACKENDS,
    AugmentConfig,
    CompareConfig,
    EvalConfig,
    GeneratorConfig,
    LoraConfig,
    ModelConfig,
    PoolConfig,
    ProbesConfig,
    RayConfig,
    Section,
    SelectConfig,
    SitConfig,
    TestbedConfig,
    TrainConfig,
    TreeConfig,
)
from instructmix.config.sources import SCORERS, EvalSourceConfig, SourceConfig

__all__ = [
    "AUGMENTATIONS",
    "NEEDS_PROBES",
    "PICKED",
    "REMOVED",
    "SCORERS",
    "STRATEGIES",
    "TEXT_BACKENDS",
    "AugmentConfig",
    "CompareConfig",
    "ConfigError",
    "EvalConfig",
    "EvalSourceConfig",
    "GeneratorConfig",
    "LmEvalConfig",
    "LoraConfig",
    "ModelConfig",
    "PoolConfig",
    "ProbesConfig",
    "RaiseConfig",
    "RayConfig",
    "RunConfig",
    "Section",
    "SelectConfig",
    "SitConfig",
    "SourceConfig",
    "TestbedConfig",
    "TrainConfig",
    "TreeConfig",
    "apply_override",
    "cross_field_problems",
    "format_errors",
    "json_schema",
    "load_config",
    "model_positions",
    "testbed_train_rows",
]
