"""The SeqEval judge: a language model asked whether a response carried out every
sub-task of a request. Only the first word of its reply is read (YES or NO); anything
else is a `Reject` with the raw reply, never a guess."""

from __future__ import annotations

from dataclasses import replace

from instructmix.generation.base import Generator, GenParams, Reject, ask, first_word, short

JUDGE_PROMPT = (
    "Below are a request, between <request> tags, and a response to it, between "
    "<response> tags.\n\n<request>\n{instruction}\n</request>\n\n<response>\n{response}"
    "\n</response>\n\nThe request may contain several sub-tasks. Does the response carry "
    "out EVERY sub-task (quality does not matter, only whether each one was attempted)? "
    "Answer YES or NO only."
)
VERDICTS = {"yes": True, "no": False}


class LLMJudge:
    """`judge_following` over a `Generator`; asks with `short(params)` (at most 8 new
    tokens, a reply cut there kept: only its first word counts)."""

    def __init__(self, generator: Generator, params: GenParams | None = None):
        self.generator = generator
        self.params = short(replace(params or GenParams(), reject_truncated=True))
        self.name = f"judge:{getattr(generator, 'name', 'generator')}"

    def judge_following(self, instructions: list[str], responses: list[str]
                        ) -> list[bool | Reject]:
        """SeqEval following: True if the response attempts every sub-task."""
        texts = [JUDGE_PROMPT.format(instruction=i, response=r)
                 for i, r in zip(instructions, responses, strict=True)]
        out: list[bool | Reject] = []
        for raw in ask(self.generator, texts, self.params):
            verdict = None if isinstance(raw, Reject) else VERDICTS.get(first_word(raw))
            if isinstance(raw, Reject):
                out.append(raw)
            elif verdict is None:
                out.append(Reject("llm: judge answer is not YES or NO", raw))
            else:
                out.append(verdict)
        return out
