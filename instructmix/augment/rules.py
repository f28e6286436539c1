"""The testbed's exact rewriter: the `Rewriter` operations done by parsing, not by a model.

Testbed instruction syntax (defined in `instructmix.grammar`):
- single task  `reverse: w`, `sort: w`, or a composite head `reverse upper: w` (ops applied
  left to right, only the final result answered);
- chain        `reverse then upper: w` (one step per sub-task, every step answered, joined
  by " | "); a step may itself be a composite head (`reverse upper then sort: w`);
- tree         `eval: upper(reverse(w))` (innermost op first, final result answered).

`sort: w` is ambiguous (sort_asc and sort_desc share it) and `double: 12` means a number
for the `double` category but the string op `double` in chains, so rows are first turned
into an explicit form with `canonical(instruction, category)`: categories without a string
operation get a `[category] ` tag. Tagged instructions are never chained (SIT mode `keep`)
and never grown into trees (a `Reject` says why); `surface()` strips the tag again.
"""

from __future__ import annotations

import random
import re

from instructmix.generation.base import Reject
from instructmix.grammar import (
    OPS,
    STEP_SEP,
    Parsed,
    apply_chain,
    parse,
    render_chain,
    render_tree,
)

#: Categories whose instruction is not a string operation from `OPS`.
UNCHAINABLE = ("sort_desc", "add", "double", "parity", "noise")
_TAG = re.compile(r"^\[(\w+)\] (.*)$", re.S)


def _tagged_answer(category: str, rest: str) -> str | Reject:
    arg = rest.partition(": ")[2].strip()
    try:
        if category == "sort_desc":
            return "".join(sorted(arg, reverse=True))
        if category == "add":
            a, b = (int(x) for x in arg.split())
            return str(a + b)
        if category == "double":
            return str(2 * int(arg))
        if category == "parity":
            return "even" if arg.count("1") % 2 == 0 else "odd"
    except ValueError:
        return Reject(f"rules: cannot read the {category} input", rest)
    return Reject(f"rules: category {category} has no exact answer", rest)


class RuleRewriter:
    """Exact `Rewriter` for testbed rows. `ops`: the ops it may add (None = all of `OPS`);
    `seed` fixes the prefix/suffix choice and the added ops (a pure function of the
    instruction and the seed, so batch order does not matter)."""

    name = "rules"
    exact = True  # responses are exact answers; Tree-Instruct length filters do not apply

    def __init__(self, ops: list[str] | None = None, seed: int = 0):
        self.ops = sorted(OPS) if ops is None else list(ops)
        unknown = sorted(set(self.ops) - set(OPS))
        if unknown or not self.ops:
            raise ValueError(f"rules: unknown or no ops {unknown}; known: {sorted(OPS)}")
        self.seed = seed

    # -- rows <-> explicit instructions -------------------------------------------------
    @staticmethod
    def canonical(instruction: str, category: str) -> str:
        """Explicit form of a row's instruction: tagged when the category is unchainable."""
        return f"[{category}] {instruction}" if category in UNCHAINABLE else instruction

    @staticmethod
    def surface(instruction: str) -> str:
        """The instruction as a model sees it (tag removed)."""
        m = _TAG.match(instruction)
        return m.group(2) if m else instruction

    def _read(self, instruction: str) -> Parsed | Reject:
        m = _TAG.match(instruction)
        if m:
            return Reject(f"rules: category {m.group(1)} has no string operation", instruction)
        parsed = parse(instruction)
        return parsed or Reject("rules: not a testbed instruction", instruction)

    def _rng(self, *key) -> random.Random:
        return random.Random("|".join(map(str, (self.seed, *key))))

    # -- Rewriter protocol ----------------------------------------------------------------
    def choose_modes(self, instructions: list[str]) -> list[str | Reject]:
        """decompose for a composite sub-task, keep for tagged rows, else prefix/suffix."""
        out: list[str | Reject] = []
        for ins in instructions:
            p = None if _TAG.match(ins) else self._read(ins)
            if p is None:
                out.append("keep")
            elif isinstance(p, Reject):
                out.append(p)
            elif any(len(step) > 1 for step in p.steps):
                out.append("decompose")
            else:
                out.append(self._rng("mode", ins).choice(["prefix", "suffix"]))
        return out

    def rewrite_sit(self, instructions: list[str], modes: list[str]) -> list[str | Reject]:
        """One more sub-task, in chain syntax (a tree counts as one composite step); keep
        (never passed by `sit_augment`) or any other mode is a Reject."""
        out: list[str | Reject] = []
        for ins, mode in zip(instructions, modes, strict=True):
            p = self._read(ins)
            if isinstance(p, Reject):
                out.append(p)
                continue
            steps = list(p.steps)
            op = self._rng(mode, ins).choice(self.ops)
            if mode == "prefix":
                steps.insert(0, (op,))
            elif mode == "suffix":
                steps.append((op,))
            elif mode == "decompose":
                k = next((i for i, s in enumerate(steps) if len(s) > 1), None)
                if k is None:
                    out.append(Reject("rules: nothing to decompose (no composite step)", ins))
                    continue
                steps[k:k + 1] = [steps[k][:1], steps[k][1:]]
            else:
                out.append(Reject(f"rules: unknown SIT mode {mode!r}", ins))
                continue
            out.append(render_chain(steps, p.text))
        return out

    def add_nodes(self, instructions: list[str], nodes: int) -> list[str | Reject]:
        """Wrap a single task / tree in exactly `nodes` more ops (`eval:` syntax)."""
        out: list[str | Reject] = []
        for ins in instructions:
            p = self._read(ins)
            if not isinstance(p, Reject) and p.form == "chain":
                p = Reject(f"rules: a chain of {len(p.steps)} steps is not one expression", ins)
            if isinstance(p, Reject):
                out.append(p)
                continue
            rng = self._rng("nodes", ins)
            out.append(render_tree(p.ops + [rng.choice(self.ops) for _ in range(nodes)], p.text))
        return out

    def respond(self, instructions: list[str]) -> list[str | Reject]:
        """Exact answers: chains answer every step (" | "), others the final result."""
        out: list[str | Reject] = []
        for ins in instructions:
            m = _TAG.match(ins)
            if m:
                out.append(_tagged_answer(m.group(1), m.group(2)))
                continue
            p = self._read(ins)
            if isinstance(p, Reject):
                out.append(p)
            else:
                out.append(STEP_SEP.join(self.steps(p)) if p.form == "chain"
                           else apply_chain(p.ops, p.text)[-1])
        return out

    @staticmethod
    def steps(p: Parsed) -> list[str]:
        """The result after each sub-task (a composite step answers its final op)."""
        results, text = [], p.text
        for step in p.steps:
            text = apply_chain(list(step), text)[-1]
            results.append(text)
        return results

    def complexity(self, instruction: str) -> float:
        """Exact node count: the number of ops (a tagged single task counts 1); text that
        is no testbed instruction gets the content-word proxy of `complexity_score`."""
        from instructmix.data.complexity import complexity_score  # imports this module

        if _TAG.match(instruction):
            return 1.0
        p = self._read(instruction)
        return complexity_score(instruction) if isinstance(p, Reject) else float(len(p.ops))

    def meta(self, instruction: str) -> dict:
        """Testbed-style meta for scoring: chains {depth, ops, steps} (ops = one head per
        step, like `sequential_item`), trees/single tasks {complexity, ops}."""
        p = self._read(instruction)
        if isinstance(p, Reject):
            return {}
        if p.form == "chain":
            return {"depth": len(p.steps), "ops": [" ".join(s) for s in p.steps],
                    "steps": self.steps(p)}
        return {"complexity": len(p.ops), "ops": p.ops}
