"""The `ifeval` scorer: IFEval's verifiable instructions (Zhou et al. 2023), checked by the
rules of google-research/instruction_following_eval in strict mode (the response as is), in
plain Python: no nltk or langdetect, nothing downloaded.

Covered: every id of `CHECKS`. Differences from the reference implementation:
- sentences (length_constraints:number_sentences) are split by a regex, not nltk punkt: a
  sentence ends at `.`, `!` or `?` followed by whitespace or the end of the text, so an
  abbreviation such as "Mr." ends one too;
- words are `\\w+` runs (the reference's number_words tokenizer; its capital-word count uses
  nltk's word_tokenize, which also splits "DON'T" into "DO", "N'T");
- change_case:english_capital / english_lowercase check the case only, not that the
  response is English (that needs langdetect);
- keywords are matched literally (the reference reads them as regular expressions).
Not covered: `language:response_language` (needs langdetect) and any id outside `CHECKS`.
A row is scored on its covered ids only; its uncovered ids are listed, never passed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable

from instructmix.data.eval_fields import IFEVAL_ARGS


def _compare(count: int, relation: str, target: int) -> bool:
    return count < target if relation == "less than" else count >= target


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if re.search(r"\w", s)]


def _paragraphs_stars(r: str, kw: dict) -> bool:
    """Paragraphs separated by `***`; an empty one only at the start or end."""
    parts = re.split(r"\s?\*\*\*\s?", r)
    n = len(parts)
    for k, part in enumerate(parts):
        if not part.strip():
            if k not in (0, len(parts) - 1):
                return False
            n -= 1
    return n == kw["num_paragraphs"]


def _nth_paragraph_first_word(r: str, kw: dict) -> bool:
    """`num_paragraphs` paragraphs separated by blank lines; paragraph `nth_paragraph`
    starts with `first_word` (case and trailing punctuation ignored)."""
    parts = re.split(r"\n\n", r)
    n = sum(1 for p in parts if p.strip())
    nth = kw["nth_paragraph"]
    if nth > n or nth < 1 or not parts[nth - 1].strip():
        return False
    word = parts[nth - 1].split()[0].strip().lstrip("'\"")
    first = re.split(r"[.,?!'\"]", word)[0].lower()
    return n == kw["num_paragraphs"] and first == kw["first_word"].lower()


def _highlights(r: str, kw: dict) -> bool:
    """At least `num_highlights` non-empty *highlighted* or **highlighted** spans."""
    single = [h for h in re.findall(r"\*[^\n*]*\*", r) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n*]*\*\*", r) if h[2:-2].strip()]
    return len(single) + len(double) >= kw["num_highlights"]


def _json(r: str, kw: dict) -> bool:
    text = r.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        text = text.removeprefix(fence)
    try:
        json.loads(text.removesuffix("```").strip())
    except ValueError:
        return False
    return True


def _postscript(r: str, kw: dict) -> bool:
    marker = kw["postscript_marker"]
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return bool(re.findall(pattern, r.lower(), flags=re.MULTILINE))


def _two_responses(r: str, kw: dict) -> bool:
    """Exactly two different responses separated by `******`."""
    parts = r.split("******")
    kept = []
    for k, part in enumerate(parts):
        if part.strip():
            kept.append(part.strip())
        elif k not in (0, len(parts) - 1):
            return False
    return len(kept) == 2 and kept[0] != kept[1]


def _sections(r: str, kw: dict) -> bool:
    parts = re.split(r"\s?" + re.escape(kw["section_spliter"]) + r"\s?\d+\s?", r)
    return len(parts) - 1 >= kw["num_sections"]


def _bullets(r: str, kw: dict) -> bool:
    stars = re.findall(r"^\s*\*[^*].*$", r, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", r, flags=re.MULTILINE)
    return len(stars) + len(dashes) == kw["num_bullets"]


def _has(word: str, r: str, whole_word: bool = False) -> bool:
    pattern = re.escape(word)
    return bool(re.search(rf"\b{pattern}\b" if whole_word else pattern, r, flags=re.I))


CONSTRAINED = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
Check = Callable[[str, dict], bool]
CHECKS: dict[str, Check] = {
    "change_case:capital_word_frequency": lambda r, kw: _compare(
        sum(w.isupper() for w in words(r)), kw["capital_relation"], kw["capital_frequency"]),
    "change_case:english_capital": lambda r, kw: r.isupper(),
    "change_case:english_lowercase": lambda r, kw: r.islower(),
    "combination:repeat_prompt": lambda r, kw: r.strip().lower().startswith(
        kw["prompt_to_repeat"].strip().lower()),
    "combination:two_responses": _two_responses,
    "detectable_content:number_placeholders": lambda r, kw: len(
        re.findall(r"\[.*?\]", r)) >= kw["num_placeholders"],
    "detectable_content:postscript": _postscript,
    "detectable_format:constrained_response": lambda r, kw: any(
        c in r.strip() for c in CONSTRAINED),
    "detectable_format:json_format": _json,
    "detectable_format:multiple_sections": _sections,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:title": lambda r, kw: any(
        t[2:-2].strip() for t in re.findall(r"<<[^\n]+>>", r)),
    "keywords:existence": lambda r, kw: all(_has(k, r) for k in kw["keywords"]),
    "keywords:forbidden_words": lambda r, kw: not any(
        _has(w, r, whole_word=True) for w in kw["forbidden_words"]),
    "keywords:frequency": lambda r, kw: _compare(
        len(re.findall(re.escape(kw["keyword"]), r, flags=re.I)), kw["relation"],
        kw["frequency"]),
    "keywords:letter_frequency": lambda r, kw: _compare(
        Counter(r.lower())[kw["letter"].lower()], kw["let_relation"], kw["let_frequency"]),
    "length_constraints:nth_paragraph_first_word": _nth_paragraph_first_word,
    "length_constraints:number_paragraphs": _paragraphs_stars,
    "length_constraints:number_sentences": lambda r, kw: _compare(
        len(sentences(r)), kw["relation"], kw["num_sentences"]),
    "length_constraints:number_words": lambda r, kw: _compare(
        len(words(r)), kw["relation"], kw["num_words"]),
    "punctuation:no_comma": lambda r, kw: "," not in r,
    "startend:end_checker": lambda r, kw: r.strip().strip('"').lower().endswith(
        kw["end_phrase"].strip().lower()),
    "startend:quotation": lambda r, kw: len(r.strip()) > 1 and r.strip()[0] == '"' == r.strip()[-1],
}
NOT_COVERED = sorted(set(IFEVAL_ARGS) - set(CHECKS))


def check_instructions(response: str, ids: list[str], kwargs: list[dict]
                       ) -> list[bool | None]:
    """Per instruction: followed or not; None when its id is not covered."""
    return [CHECKS[i](response, kw) if i in CHECKS else None
            for i, kw in zip(ids, kwargs, strict=True)]
