"""The interfaces every augmentation backend implements.

Two layers:
- a `Generator` answers chat prompts with text (a local HF model on a Ray Data actor pool,
  or an OpenAI-compatible HTTP endpoint);
- a `Rewriter` performs the augmentation operations (choose a SIT mode, rewrite an
  instruction, add Tree-Instruct nodes, answer an instruction, judge a response). The
  LLM rewriter does them through a `Generator` with prompts; the rule rewriter does them
  exactly for the synthetic testbed.
A failed item is a `Reject` carrying the reason (and the raw output): never dropped,
never silently kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SIT_MODES = ("decompose", "prefix", "suffix", "keep")
#: Reject reason of a completion cut at max_new_tokens (see GenParams.reject_truncated).
TRUNCATED = "truncated at max_new_tokens"


@dataclass(frozen=True)
class Reject:
    """Why an item could not be produced; `raw` is what the generator returned, if any."""

    reason: str
    raw: str = ""


@dataclass(frozen=True)
class GenParams:
    """`reject_truncated`: a completion cut at `max_new_tokens` (finish reason "length")
    becomes `Reject("truncated at max_new_tokens", text)` instead of a text."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    reject_truncated: bool = True


class Generator(Protocol):
    name: str

    def complete(self, prompts: list[list[dict]], params: GenParams) -> list[str | Reject]:
        """One completion per prompt (a list of {role, content}), in the same order."""


class Rewriter(Protocol):
    name: str

    def choose_modes(self, instructions: list[str]) -> list[str | Reject]:
        """A SIT mode (one of SIT_MODES) per instruction."""

    def rewrite_sit(self, instructions: list[str], modes: list[str]) -> list[str | Reject]:
        """The instruction rewritten as a chain one step longer, per `modes` (decompose,
        prefix or suffix; `sit_augment` never passes keep, any other mode is a Reject)."""

    def add_nodes(self, instructions: list[str], nodes: int) -> list[str | Reject]:
        """The instruction with exactly `nodes` more tree nodes (Tree-Instruct)."""

    def respond(self, instructions: list[str]) -> list[str | Reject]:
        """A response to every instruction."""

    def complexity(self, instruction: str) -> float:
        """Complexity score: exact node count on the testbed, a proxy on real text."""
