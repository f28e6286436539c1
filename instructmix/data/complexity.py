"""Instruction complexity (Tree-Instruct's tree size).

- Testbed rows: the exact node count = number of operations. Taken from meta's
  `complexity` (complex rows) or `ops` (sequential rows), else parsed from the
  instruction: `reverse upper: w` = 2, `reverse then upper: w` = 2,
  `eval: upper(reverse(w))` = 2, any other testbed task (`add: 3 4`, `sort: w`) = 1.
- Real text: a PROXY, not a parse tree: the number of distinct content words (alphabetic
  words of 3+ letters, lower-cased, minus a short stopword list). It grows with the
  nouns and verbs an instruction mentions, which is what Tree-Instruct adds, but it is
  only comparable between texts of the same language and style.
"""

from __future__ import annotations

import re

from instructmix.data.schema import meta_dict
from instructmix.grammar import TASKS, parse

STOPWORDS = frozenset(
    "the and for are but not you your yours with this that these those from into onto "
    "about over under than then them they their there here what which who whom whose "
    "when where why how all any each every some such only own same too very can will "
    "just should would could may might must shall was were been being have has had "
    "does did doing its it's our ours out off again further once also please".split()
)
_WORD = re.compile(r"[A-Za-z]+")
_TASK_HEAD = re.compile(r"^(\w+): \S")


def content_words(text: str) -> set[str]:
    """Distinct lower-cased alphabetic words of 3+ letters that are not stopwords."""
    return {w for w in (m.lower() for m in _WORD.findall(text))
            if len(w) >= 3 and w not in STOPWORDS}


def testbed_nodes(instruction: str) -> int | None:
    """Exact op count of a testbed instruction, None if it is not one."""
    parsed = parse(instruction)
    if parsed is not None:
        return len(parsed.ops)
    m = _TASK_HEAD.match(instruction.strip())
    return 1 if m and m.group(1) in TASKS and "\n" not in instruction.strip() else None


def complexity_score(instruction: str, meta: str | dict = "") -> float:
    """Exact node count for testbed rows, else the content-word proxy (see module doc)."""
    info = meta_dict(meta)
    if isinstance(info.get("complexity"), (int, float)):
        return float(info["complexity"])
    if isinstance(info.get("ops"), list) and info["ops"]:
        return float(sum(len(str(op).split()) for op in info["ops"]))
    nodes = testbed_nodes(instruction)
    return float(nodes) if nodes is not None else float(len(content_words(instruction)))
