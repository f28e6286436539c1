"""`eval.lm_eval`: lm-evaluation-harness tasks run on the exported model, and the load-time
check that lm-eval is installed and knows every task (its registry plus `include_path`)."""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

FIELD = "eval.lm_eval"
INSTALL = "pip install 'instructmix[lmeval]'"


class LmEvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(
        ..., min_length=1, description="lm-eval task, group or tag names, e.g. [mmlu, gsm8k, "
        "ifeval] (their datasets come from the HF hub), or tasks of include_path's YAMLs.")
    include_path: str | None = Field(
        None, description="A folder of task YAMLs (e.g. datasets from local JSONL files), "
        "added to lm-eval's own tasks.")
    num_fewshot: int | None = Field(None, ge=0, description="None: each task's own.")
    limit: int | None = Field(None, ge=1, description="Score at most this many docs per task.")
    batch_size: int = Field(8, ge=1)
    apply_chat_template: bool = Field(
        False, description="Wrap prompts in the model's chat template (as it was fine-tuned).")

    @field_validator("include_path")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        """Ray workers run in other directories: a relative path is made absolute here."""
        return str(Path(v).expanduser().resolve()) if v else v


@lru_cache(maxsize=1)
def _registry() -> frozenset[str]:
    """Task, group and tag names of lm-eval's own YAMLs (indexing them takes seconds)."""
    from lm_eval.tasks import TaskManager

    return frozenset(TaskManager().all_tasks)


def _known_names(include_path: str | None) -> frozenset[str]:
    """The registry's names plus those of the YAMLs in `include_path`."""
    from lm_eval.tasks import TaskManager

    if include_path is None:
        return _registry()
    local = TaskManager(include_path=include_path, include_defaults=False)
    return _registry() | set(local.all_tasks)


def lm_eval_problems(lc: LmEvalConfig | None, field: str = FIELD) -> list[str]:
    """Problems of `lc` as "FIELD: message" lines: lm-eval missing, include_path not a
    folder, task names lm-eval does not know."""
    if lc is None:
        return []
    try:
        import lm_eval
    except ImportError:
        return [f"{field}: lm-evaluation-harness is not installed ({INSTALL}); "
                f"or remove {field}"]
    include = lc.include_path
    if include is not None and not Path(include).is_dir():
        return [f"{field}.include_path: {include!r} is not a folder of task YAMLs"]
    try:
        known = _known_names(include)
    except Exception as e:  # a broken YAML in include_path
        return [f"{field}.include_path: lm-eval cannot index {include!r}: {e}"]
    unknown = [t for t in lc.tasks if t not in known]
    if not unknown:
        return []
    hints = {t: difflib.get_close_matches(t, known, n=1) for t in unknown}
    close = "; ".join(f"{t!r}: did you mean {h[0]!r}?" for t, h in hints.items() if h)
    where = f" or the YAMLs of {field}.include_path={lc.include_path!r}" if include else ""
    return [f"{field}.tasks: unknown task(s) {unknown}: not in lm-eval "
            f"{lm_eval.__version__}'s registry{where}" + (f" ({close})" if close else "")]
