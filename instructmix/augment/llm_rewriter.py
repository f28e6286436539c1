"""The augmentation operations done by a language model through a `Generator`.

Every method sends ONE batched `Generator.complete` call for all of its inputs and parses
the replies strictly: a reply that does not fit (a first word that is not a mode, an empty
rewrite, a rewrite that only repeats its input or drops most of it) becomes a `Reject`
with the reason and the raw text. A `Reject` from the generator passes through.
"""

from __future__ import annotations

import re
from dataclasses import replace

from instructmix.data.complexity import complexity_score, content_words
from instructmix.generation.base import (
    SIT_MODES,
    Generator,
    GenParams,
    Reject,
    ask,
    first_word,
    short,
)

# Every prompt puts the text it works on first, between tags, and its directions last: a
# task given as data is itself an instruction, and small models otherwise carry it out.
_TASK = ("Below, between <task> tags, is a task given to an assistant. Do not carry it "
         "out.\n\n<task>\n{instruction}\n</task>\n\n")
MODE_PROMPT = _TASK + (
    "Decide how to turn it into a task with one more step:\n"
    "- decompose: it already hides two steps that can be stated separately;\n"
    "- prefix: a closely related step fits naturally before it;\n"
    "- suffix: a closely related step fits naturally after it;\n"
    "- keep: no sensible extra step exists.\n"
    "Reply with one word: decompose, prefix, suffix or keep."
)
_REWRITE_HOW = {
    "decompose": "Split the task into two sub-tasks that must be carried out one after the "
                 "other, the second using the result of the first.",
    "prefix": "Add one related sub-task that has to be carried out BEFORE the task, and whose "
              "result the task then uses.",
    "suffix": "Add one related sub-task that has to be carried out AFTER the task, working "
              "on its result.",
}
REWRITE_PROMPT = _TASK + (
    "Rewrite the task as a sequence of sub-tasks. {how} Keep every detail and any input "
    "text of the original. Write only the rewritten task, with no title, comment or answer."
)
TREE_PROMPT = _TASK + (
    "Think of the task as a tree: its key nouns and verbs are the nodes, linked by how they "
    "depend on each other. Grow that tree by exactly {nodes} new nodes, each a noun or a "
    "verb that brings a concrete, relevant detail (a constraint, an object, a step). Then "
    "write the task that the grown tree describes, as one fluent request. Do not mention "
    "trees or nodes and do not answer the task; write only the new task."
)
_FENCE = re.compile(r"^```[\w-]*\n(.*?)\n?```$", re.S)
_LABEL = re.compile(r"^\**(?:rewritten|new|revised) (?:task|instruction)\**\s*:\s*", re.I)
_TAGS = re.compile(r"^<task>\s*(.*?)\s*</task>$", re.S)  # the prompt's wrapper, echoed
#: A SIT or Tree-Instruct rewrite must keep at least this share of the input's distinct
#: content words (the prompts ask to keep every detail): a reply that answers the task, or
#: starts another one, instead of rewriting it keeps few of them.
MIN_KEPT_WORDS = 0.5


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _clean(raw: str) -> str:
    """The reply without a code fence, a leading "New task:"-style label, <task> tags or
    quotes."""
    text = raw.strip()
    m = _FENCE.match(text)
    text = (m.group(1) if m else text).strip()
    text = _LABEL.sub("", text, count=1).strip()
    m = _TAGS.match(text)
    return (m.group(1) if m else text).strip('"').strip()


def rewrite_flaw(before: str, after: str, min_kept: float = MIN_KEPT_WORDS) -> str | None:
    """Why a cleaned rewrite of `before` fails the rule checks (None: it passes)."""
    if not after:
        return "llm: empty rewrite"
    if _norm(after) == _norm(before):
        return "llm: rewrite repeats the input unchanged"
    if words := content_words(before):
        kept = len(words & content_words(after)) / len(words)
        if kept < min_kept:
            return (f"llm: rewrite keeps {kept:.0%} of the input's content words, needs "
                    f"{min_kept:.0%}")
    return None


class LLMRewriter:
    """`Rewriter` over a `Generator`. `params`: generation settings of rewrites
    (`rewrite_sit`, `add_nodes`) and answers (`respond`); these always reject a completion
    cut at max_new_tokens (reject_truncated=True): a truncated text never becomes training
    data.

    The mode choice (`choose_modes`) only parses the first word of the reply, so it asks
    with `generation.base.short(params)`: at most SHORT_TOKENS (8) new tokens, a reply cut
    at that cap kept."""

    exact = False

    def __init__(self, generator: Generator, params: GenParams | None = None):
        self.generator = generator
        self.params = replace(params or GenParams(), reject_truncated=True)
        self.name = f"llm:{getattr(generator, 'name', 'generator')}"
        self._short = short(self.params)
        self.rewrites: list[tuple[str, str]] = []  # see take_rewrites

    @staticmethod
    def canonical(instruction: str, category: str) -> str:
        return instruction

    @staticmethod
    def surface(instruction: str) -> str:
        return instruction

    def _ask(self, user_texts: list[str], params: GenParams) -> list[str | Reject]:
        return ask(self.generator, user_texts, params)

    def choose_modes(self, instructions: list[str]) -> list[str | Reject]:
        raws = self._ask([MODE_PROMPT.format(instruction=i) for i in instructions], self._short)
        out: list[str | Reject] = []
        for raw in raws:
            word = raw if isinstance(raw, Reject) else first_word(raw)
            if isinstance(word, str) and word not in SIT_MODES:
                word = Reject(f"llm: mode reply is not one of {'/'.join(SIT_MODES)}", raw)
            out.append(word)
        return out

    def _rewrites(self, instructions: list[str], raws: list[str | Reject],
                  min_kept: float = 0.0) -> list:
        """Cleaned rewrites; `min_kept`: least share of the input's content words kept."""
        out: list[str | Reject] = []
        for ins, raw in zip(instructions, raws, strict=True):
            if isinstance(raw, Reject):
                out.append(raw)
                continue
            text = _clean(raw)
            if text:
                self.rewrites.append((ins, text))
            why = rewrite_flaw(ins, text, min_kept)
            out.append(Reject(why, raw) if why else text)
        return out

    def take_rewrites(self) -> list[tuple[str, str]]:
        """(input, cleaned rewrite) of every non-empty rewrite since the last call, whether
        the rule checks kept it or not (for `judge_check`); clears the list."""
        out, self.rewrites = self.rewrites, []
        return out

    def rewrite_sit(self, instructions: list[str], modes: list[str]) -> list[str | Reject]:
        """One batched call for the decompose / prefix / suffix rows; any other mode
        (including keep, which `sit_augment` never passes) is a Reject without a call."""
        out: list[str | Reject] = [
            ins if m in _REWRITE_HOW else Reject(f"llm: unknown SIT mode {m!r}")
            for ins, m in zip(instructions, modes, strict=True)]
        todo = [k for k, m in enumerate(modes) if m in _REWRITE_HOW]
        texts = [REWRITE_PROMPT.format(how=_REWRITE_HOW[modes[k]], instruction=instructions[k])
                 for k in todo]
        done = self._rewrites([instructions[k] for k in todo], self._ask(texts, self.params),
                              MIN_KEPT_WORDS)
        for k, text in zip(todo, done, strict=True):
            out[k] = text
        return out

    def add_nodes(self, instructions: list[str], nodes: int) -> list[str | Reject]:
        texts = [TREE_PROMPT.format(nodes=nodes, instruction=i) for i in instructions]
        return self._rewrites(instructions, self._ask(texts, self.params), MIN_KEPT_WORDS)

    def respond(self, instructions: list[str]) -> list[str | Reject]:
        out: list[str | Reject] = []
        for raw in self._ask(list(instructions), self.params):
            if isinstance(raw, str) and not raw.strip():
                raw = Reject("llm: empty response", raw)
            out.append(raw if isinstance(raw, Reject) else raw.strip())
        return out

    def complexity(self, instruction: str) -> float:
        """Content-word proxy (see `complexity.complexity_score`)."""
        return complexity_score(instruction, "")
