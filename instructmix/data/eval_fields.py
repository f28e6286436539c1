"""What an eval row's scorer needs, read from its source row and kept in `meta["eval"]`.

Every eval row (from `pool.eval_sources`) gets `meta["eval"] = {"scorer": ...}`, plus:
- `max_new_tokens` when its source sets one;
- choice: `choices` (the option texts) and `gold` (the 0-based index of the right one). The
  options come from the source field `choices_field` (a list of at least 2 distinct,
  non-empty strings or numbers); the gold option from the row's `answer`, read as
  `choice_label` says: the option's text, its 0-based index, or its letter (A = the first).
  The row's `answer` becomes the gold option's text, and a row without a response gets that
  text as its response (what loss and token accuracy score);
- ifeval: `instruction_id_list` (non-empty list of ids) and `kwargs` (one object per id; null
  values dropped, as in the Hugging Face copy of IFEval), read from the source fields of the
  same names. Arguments of the ids IFEval defines are checked against `IFEVAL_ARGS`.
A row that does not fit is rejected (`RowError`) with the field and the reason.
"""

from __future__ import annotations

import json
import string

from instructmix.data.schema import RowError, meta_dict

# Eval scorers whose rows need no reference response (choice: the gold option is one).
NO_RESPONSE_NEEDED = ("choice", "ifeval")
RELATIONS = ("less than", "at least")
# Every IFEval instruction id (google-research instruction_following_eval) -> its arguments:
# int, str, list (of strings) or "relation" (one of RELATIONS).
IFEVAL_ARGS: dict[str, dict[str, object]] = {
    "change_case:capital_word_frequency": {"capital_frequency": int,
                                           "capital_relation": "relation"},
    "change_case:english_capital": {},
    "change_case:english_lowercase": {},
    "combination:repeat_prompt": {"prompt_to_repeat": str},
    "combination:two_responses": {},
    "detectable_content:number_placeholders": {"num_placeholders": int},
    "detectable_content:postscript": {"postscript_marker": str},
    "detectable_format:constrained_response": {},
    "detectable_format:json_format": {},
    "detectable_format:multiple_sections": {"num_sections": int, "section_spliter": str},
    "detectable_format:number_bullet_lists": {"num_bullets": int},
    "detectable_format:number_highlighted_sections": {"num_highlights": int},
    "detectable_format:title": {},
    "keywords:existence": {"keywords": list},
    "keywords:forbidden_words": {"forbidden_words": list},
    "keywords:frequency": {"frequency": int, "keyword": str, "relation": "relation"},
    "keywords:letter_frequency": {"let_frequency": int, "let_relation": "relation",
                                  "letter": str},
    "language:response_language": {"language": str},
    "length_constraints:nth_paragraph_first_word": {"first_word": str, "nth_paragraph": int,
                                                    "num_paragraphs": int},
    "length_constraints:number_paragraphs": {"num_paragraphs": int},
    "length_constraints:number_sentences": {"num_sentences": int, "relation": "relation"},
    "length_constraints:number_words": {"num_words": int, "relation": "relation"},
    "punctuation:no_comma": {},
    "startend:end_checker": {"end_phrase": str},
    "startend:quotation": {},
}


def eval_spec(source) -> str:
    """The scorer settings of an `EvalSourceConfig`, as the JSON string records carry."""
    return json.dumps({"scorer": source.scorer, "choices_field": source.choices_field,
                       "choice_label": source.choice_label,
                       "max_new_tokens": source.max_new_tokens})


def _option(value, k: int, field: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise RowError("bad choices", f"field {field!r}: option {k} must be a non-empty "
                       f"string, got {value!r}")
    return value


def _choices(raw: dict, field: str) -> list[str]:
    value = raw.get(field)
    if value is None:
        raise RowError("bad choices", f"missing field {field!r} (the options of the choice "
                       "scorer)")
    if not isinstance(value, list) or len(value) < 2:
        raise RowError("bad choices", f"field {field!r} must be a list of at least 2 "
                       f"options, got {json.dumps(value)[:80]}")
    options = [_option(v, k, field) for k, v in enumerate(value)]
    if len({o.strip() for o in options}) < len(options):
        raise RowError("bad choices", f"field {field!r} repeats an option: {options}")
    return options


def _gold(answer: str, options: list[str], label: str) -> int:
    """The index of the gold option, which `answer` names as `label` says."""
    a = answer.strip()
    if label == "text":
        texts = [o.strip() for o in options]
        if a in texts:
            return texts.index(a)
        raise RowError("bad choices", f"answer {answer!r} is not one of the options {options}")
    if label == "index" and a.isdigit() and int(a) < len(options):
        return int(a)
    letters = string.ascii_uppercase[: len(options)]
    if label == "letter" and len(a) == 1 and a.upper() in letters:
        return letters.index(a.upper())
    want = (f"an index 0-{len(options) - 1}" if label == "index"
            else f"a letter {letters[0]}-{letters[-1]}")
    raise RowError("bad choices", f"answer {answer!r} is not {want} of the {len(options)} "
                   "options")


def _ifeval_args(iid: str, kwargs, k: int) -> dict:
    if not isinstance(kwargs, dict):
        raise RowError("bad ifeval fields", f"kwargs[{k}] must be an object, got "
                       f"{type(kwargs).__name__}")
    kwargs = {a: v for a, v in kwargs.items() if v is not None}
    spec = IFEVAL_ARGS.get(iid)
    if spec is None:  # not an IFEval id: scored as not covered
        return kwargs
    if set(kwargs) != set(spec):
        raise RowError("bad ifeval fields", f"kwargs[{k}] of {iid!r} must have exactly "
                       f"{sorted(spec)}, got {sorted(kwargs)}")
    for name, kind in spec.items():
        v = kwargs[name]
        ok = {int: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
              str: isinstance(v, str) and bool(v.strip()),
              list: isinstance(v, list) and all(isinstance(w, str) and w for w in v),
              "relation": v in RELATIONS}[kind]
        if not ok:
            want = {int: "an integer >= 0", str: "a non-empty string",
                    list: "a list of non-empty strings", "relation": f"one of {RELATIONS}"}
            raise RowError("bad ifeval fields", f"kwargs[{k}].{name} of {iid!r} must be "
                           f"{want[kind]}, got {v!r}")
    return kwargs


def _ifeval(raw: dict) -> dict:
    ids, kwargs = raw.get("instruction_id_list"), raw.get("kwargs")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise RowError("bad ifeval fields", "field 'instruction_id_list' must be a non-empty "
                       f"list of instruction ids, got {json.dumps(ids)[:80]}")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise RowError("bad ifeval fields", f"field 'kwargs' must be a list of {len(ids)} "
                       f"objects (one per instruction id), got {json.dumps(kwargs)[:80]}")
    pairs = enumerate(zip(ids, kwargs, strict=True))
    return {"instruction_id_list": ids, "kwargs": [_ifeval_args(i, kw, k) for k, (i, kw) in pairs]}


def with_eval_fields(row: dict, raw: dict, spec: dict) -> dict:
    """The canonical `row` of the source row `raw` with its scorer's fields in
    `meta["eval"]` (see the module docstring); raises `RowError` when they are malformed."""
    fields: dict = {"scorer": spec["scorer"]}
    if spec.get("max_new_tokens"):
        fields["max_new_tokens"] = spec["max_new_tokens"]
    if spec["scorer"] == "choice":
        options = _choices(raw, spec["choices_field"])
        gold = _gold(row["answer"], options, spec["choice_label"])
        fields.update(choices=options, gold=gold)
        row["answer"] = options[gold]
        if not row["messages"][-1]["content"].strip():
            row["messages"][-1]["content"] = options[gold]
    elif spec["scorer"] == "ifeval":
        fields.update(_ifeval(raw))
    meta = meta_dict(row["meta"])
    row["meta"] = json.dumps({**meta, "eval": fields}, sort_keys=True)
    return row
