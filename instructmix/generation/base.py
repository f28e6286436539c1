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

import re
from dataclasses import dataclass, replace
from typing import Protocol

SIT_MODES = ("decompose", "prefix", "suffix", "keep")
#: Reject reason of a completion cut at max_new_tokens (see GenParams.reject_truncated).
TRUNCATED = "truncated at max_new_tokens"
#: New tokens at most of a one-word reply (a SIT mode choice, a judge verdict).
SHORT_TOKENS = 8
_FIRST_WORD = re.compile(r"[^A-Za-z]*([A-Za-z]+)")


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


def first_word(raw: str) -> str:
    """The reply's first alphabetic word, lower-cased ("- Decompose: ..." -> "decompose")."""
    m = _FIRST_WORD.match(raw)
    return m.group(1).lower() if m else ""


def short(params: GenParams) -> GenParams:
    """Settings of a one-word reply: at most SHORT_TOKENS new tokens whatever
    `params.max_new_tokens` says (a smaller value is kept), and a reply cut at that cap is
    kept (only its first word is read)."""
    return replace(params, reject_truncated=False,
                   max_new_tokens=min(params.max_new_tokens, SHORT_TOKENS))


def ask(generator: Generator, user_texts: list[str], params: GenParams) -> list[str | Reject]:
    """One completion per user message, checked to be one per prompt."""
    if not user_texts:
        return []
    prompts = [[{"role": "user", "content": t}] for t in user_texts]
    out = generator.complete(prompts, params)
    if len(out) != len(prompts):
        name = getattr(generator, "name", "generator")
        raise RuntimeError(f"{name}: {len(out)} completions for {len(prompts)} prompts")
    return out
