"""Pool and eval sources (`pool.sources`, `pool.eval_sources`), and the load-time check of
the eval sources' scorer settings (run by `run.py`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCORERS = ("exact", "number", "choice", "ifeval")
CHOICE_ONLY = ("choices_field", "choice_label")


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as every section

    path: str = Field(..., description="A JSONL or Parquet file, or a folder of them.")
    format: Literal["auto", "alpaca", "messages", "mapping"] = "auto"
    mapping: dict[str, str] = Field(
        default_factory=dict,
        description="For format=mapping: canonical field -> source field "
        "(instruction, input, output, id, category, answer).",
    )
    name: str | None = Field(None, description="Source label stored with each row.")
    limit: int | None = Field(None, ge=1, description="Read at most this many lines/rows.")
    every: int = Field(1, ge=1, description="Read only every `every`-th line/row (a spread "
                       "sample of a sorted file); lines skipped this way are not read.")
    offset: int = Field(0, ge=0, description="With `every`: read lines offset, offset + "
                        "every, ... (0-based): disjoint train and held-out samples of one "
                        "file use the same `every` and different offsets.")

    @model_validator(mode="after")
    def _offset_below_every(self) -> SourceConfig:
        if self.offset >= self.every:
            raise ValueError(f"offset ({self.offset}) must be below every ({self.every})")
        return self


class EvalSourceConfig(SourceConfig):
    """A held-out eval source and the scorer that decides `correct` for its rows."""

    scorer: Literal[SCORERS] = Field(
        "exact", description="exact: the normalised greedy generation equals the reference; "
        "number: the final number of the generation equals the reference's (GSM8K); "
        "choice: the option of highest log-likelihood is the gold one; ifeval: IFEval rule "
        "checks of the generation (rows need instruction_id_list and kwargs fields).")
    choices_field: str | None = Field(
        None, description="choice: the source field holding the list of option texts.")
    choice_label: Literal["text", "index", "letter"] = Field(
        "text", description="choice: how the row's answer names the gold option: its text, "
        "its 0-based index, or its letter (A = the first option).")
    max_new_tokens: int | None = Field(
        None, ge=1, description="Greedy generation length for this source's rows (None: "
        "eval.max_new_tokens), e.g. 256 for GSM8K rationales.")


def eval_scorer_problems(sources: list[EvalSourceConfig]) -> list[str]:
    """The choice scorer needs its options field; choice settings on another scorer, and a
    generation length for choice (which generates nothing), would be ignored."""
    out = []
    for k, s in enumerate(sources):
        at = f"pool.eval_sources.{k}"  # the dotted path pydantic errors use
        if s.scorer == "choice" and not s.choices_field:
            out.append(f"{at}.scorer, {at}.choices_field: scorer='choice' ranks the options "
                       f"of each row, but {at}.choices_field is not set; name the source "
                       "field holding the list of options, e.g. choices_field: choices")
        if s.scorer != "choice":
            out += [f"{at}.{f}, {at}.scorer: {f}={getattr(s, f)!r} is read only by scorer "
                    f"'choice', but {at}.scorer={s.scorer!r}; remove it or set scorer: choice"
                    for f in CHOICE_ONLY if f in s.model_fields_set]
        elif s.max_new_tokens is not None:
            out.append(f"{at}.max_new_tokens, {at}.scorer: scorer='choice' generates nothing "
                       f"(it ranks the options), but {at}.max_new_tokens={s.max_new_tokens}; "
                       "remove it")
    return out
