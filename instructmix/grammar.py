"""The synthetic testbed's vocabulary and instruction syntax, shared by every layer.

- `TASKS`: the testbed categories, each a maker of (prompt, exact answer) pairs.
- `OPS`: string operations that sequential chains and complexity trees are built from.
- Instruction syntax (`parse`, `render_chain`, `render_tree`):
  - single task `reverse: w`, `sort: w`, or a composite head `reverse upper: w` (ops applied
    left to right, only the final result answered);
  - chain `reverse then upper: w` (one step per sub-task, every step answered, joined by
    `STEP_SEP`); a step may itself be a composite head (`reverse upper then sort: w`);
  - tree `eval: upper(reverse(w))` (innermost op first, final result answered).

Pure functions and constants only: config validation, the testbed generator, the
complexity score, the rule rewriter and depth scoring all read it.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

LETTERS = string.ascii_lowercase
STEP_SEP = " | "
_CALL = re.compile(r"^(\w+)\((.*)\)$", re.S)


@dataclass(frozen=True)
class Task:
    """One category: builds (prompt, answer) from a random generator."""

    name: str
    make: Callable[[random.Random], tuple[str, str]]


def random_word(rng: random.Random, lo: int = 3, hi: int = 7) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))


def _reverse(rng):
    w = random_word(rng)
    return f"reverse: {w}", w[::-1]


def _upper(rng):
    w = random_word(rng)
    return f"upper: {w}", w.upper()


def _rev_upper(rng):
    w = random_word(rng)
    return f"reverse upper: {w}", w[::-1].upper()


def _add(rng):
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return f"add: {a} {b}", str(a + b)


def _double(rng):
    a = rng.randint(0, 99)
    return f"double: {a}", str(a + a)


def _sort_asc(rng):
    w = random_word(rng, 4, 7)
    return f"sort: {w}", "".join(sorted(w))


def _sort_desc(rng):
    w = random_word(rng, 4, 7)
    return f"sort: {w}", "".join(sorted(w, reverse=True))


def _noise(rng):
    w = random_word(rng)
    return f"noise: {w}", random_word(rng)


def _parity(rng):
    bits = "".join(rng.choice("01") for _ in range(rng.randint(3, 8)))
    return f"parity: {bits}", "even" if bits.count("1") % 2 == 0 else "odd"


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("reverse", _reverse),
        Task("upper", _upper),
        Task("rev_upper", _rev_upper),
        Task("add", _add),
        Task("double", _double),
        Task("sort_asc", _sort_asc),
        Task("sort_desc", _sort_desc),
        Task("noise", _noise),
        Task("parity", _parity),
    ]
}

OPS: dict[str, Callable[[str], str]] = {
    "reverse": lambda s: s[::-1],
    "upper": lambda s: s.upper(),
    "lower": lambda s: s.lower(),
    "sort": lambda s: "".join(sorted(s)),
    "first3": lambda s: s[:3],
    "double": lambda s: s + s,
    "drop_last": lambda s: s[:-1],
}


def apply_chain(ops: list[str], text: str) -> list[str]:
    """Every intermediate result of applying `ops` in order to `text`."""
    steps = []
    for op in ops:
        text = OPS[op](text)
        steps.append(text)
    return steps


@dataclass(frozen=True)
class Parsed:
    """A parsed instruction: `steps` = sub-tasks, each a list of ops (applied in order);
    `form` is single / chain / tree; `text` is the input string the ops act on."""

    form: str
    steps: tuple[tuple[str, ...], ...]
    text: str

    @property
    def ops(self) -> list[str]:
        return [op for step in self.steps for op in step]


def _head_ops(head: str) -> tuple[str, ...] | None:
    ops = tuple(head.split())
    return ops if ops and all(op in OPS for op in ops) else None


def parse(instruction: str) -> Parsed | None:
    """The structure of an instruction in the syntax above, or None if it is not one."""
    head, sep, text = instruction.strip().partition(": ")
    if not sep or not text.strip() or "\n" in instruction.strip():
        return None
    text = text.strip()
    if head == "eval":
        ops: list[str] = []
        while (m := _CALL.match(text)) and m.group(1) in OPS:
            ops.insert(0, m.group(1))
            text = m.group(2)
        if not ops or "(" in text or ")" in text:
            return None
        return Parsed("tree", (tuple(ops),), text)
    steps = [_head_ops(part) for part in head.split(" then ")]
    if any(s is None for s in steps):
        return None
    return Parsed("chain" if len(steps) > 1 else "single", tuple(steps), text)


def render_chain(steps, text: str) -> str:
    """Chain / single-task syntax: `a then b c: text`."""
    return " then ".join(" ".join(step) for step in steps) + f": {text}"


def render_tree(ops: list[str], text: str) -> str:
    """`eval:` syntax with `ops[0]` innermost."""
    expr = text
    for op in ops:
        expr = f"{op}({expr})"
    return f"eval: {expr}"
