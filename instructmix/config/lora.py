"""The LoRA section (`train.lora`, `probes.lora`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LoraConfig(BaseModel):
    """LoRA adapters (peft) instead of training every weight; the export merges them."""

    model_config = ConfigDict(extra="forbid")  # as every section

    rank: int = Field(8, ge=1, description="Rank r of the adapter matrices.")
    alpha: float = Field(16.0, gt=0, description="Scale: the update is alpha / rank x BA.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names that get adapters (e.g. [q_proj, v_proj]), "
        "or every linear layer but the output head.")
