"""Canonical row schema and conversion of source rows into it.

Canonical row: id (unique str), category (str, "" = to be assigned), messages (list of
{role, content}, ending with a non-empty assistant turn; empty only for the eval rows of
scorers that need no reference, see `eval_fields`), answer (str, "" if none), source (str),
meta (JSON str, "" if none). A row that does not fit raises `RowError` with a kind
(what `pool/stats.json` counts) and a message naming the field.

Types: text fields (instruction, input, output, role, content) must be JSON strings; a
number, list, object or boolean there is rejected. Identifiers and labels (id, category)
and the reference `answer` may also be integers (answer: any finite number), written as
their decimal text: ids and numeric answers are common in public data.
"""

from __future__ import annotations

import hashlib
import json
import math

ROLES = {"system", "user", "assistant"}
MAPPABLE = ("instruction", "input", "output", "id", "category", "answer")
TEXT_FIELDS = ("instruction", "input", "output")


class RowError(ValueError):
    """Why a row is rejected: `kind` groups reasons for counting, the message names the
    field or position."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _number_ok(value, floats: bool) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return floats and isinstance(value, float) and math.isfinite(value)


def _field(row: dict, field: str, required: bool) -> str:
    """A string field; numbers are accepted only for id and category (integers) and answer
    (finite numbers)."""
    value = row.get(field)
    if value is None:
        if required:
            raise RowError("missing field", f"missing field {field!r}")
        return ""
    if isinstance(value, str):
        return value
    if field in ("id", "category", "answer") and _number_ok(value, floats=field == "answer"):
        return str(value)
    raise RowError("wrong type", f"field {field!r} must be a string, got "
                   f"{type(value).__name__}")


def _messages(value, response_required: bool) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RowError("wrong type", "field 'messages' must be a non-empty list")
    out = []
    for k, m in enumerate(value):
        if not isinstance(m, dict):
            raise RowError("wrong type", f"messages[{k}] must be an object with role and "
                           "content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise RowError("bad messages", f"messages[{k}].role must be one of "
                           f"{sorted(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise RowError("wrong type", f"messages[{k}].content must be a string, got "
                           f"{type(content).__name__}")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "assistant":
        if response_required:
            raise RowError("bad messages", "the last message must be the assistant's response")
        out.append({"role": "assistant", "content": ""})
    if response_required and not out[-1]["content"].strip():
        raise RowError("empty field", f"messages[{len(out) - 1}].content (the response) is "
                       "empty")
    if not any(m["role"] == "user" and m["content"].strip() for m in out):
        raise RowError("bad messages", "messages has no non-empty user turn")
    return out


def detect_format(row: dict) -> str:
    if "messages" in row:
        return "messages"
    if "instruction" in row or "output" in row:
        return "alpaca"
    raise RowError("unknown format", "cannot tell the format: no 'messages' and no "
                   "'instruction'/'output' field")


def to_canonical(row, fmt: str, mapping: dict[str, str], source: str, fallback_id: str,
                 response_required: bool = True) -> dict:
    """Convert one parsed source row; `fallback_id` names the row when it has no id. Without
    `response_required` (eval rows some scorers judge without a reference response), a
    missing or empty response is kept as an empty assistant turn."""
    if not isinstance(row, dict):
        raise RowError("not an object", f"a row must be a JSON object, got "
                       f"{type(row).__name__}")
    if fmt == "mapping":
        unknown = set(mapping) - set(MAPPABLE)
        if unknown:
            raise RowError("bad mapping", f"mapping names unknown canonical fields "
                           f"{sorted(unknown)}")
        row = {canon: row.get(src) for canon, src in mapping.items()}
        fmt = "alpaca"
    elif fmt == "auto":
        fmt = detect_format(row)
    if fmt == "messages":
        messages = _messages(row.get("messages"), response_required)
    else:
        required = {"instruction": True, "input": False, "output": response_required}
        instruction, inp, output = (_field(row, f, required[f]) for f in TEXT_FIELDS)
        for name, text in (("instruction", instruction), ("output", output)):
            if not text.strip() and required[name]:
                raise RowError("empty field", f"field {name!r} is empty")
        prompt = f"{instruction}\n\n{inp}" if inp.strip() else instruction
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    meta = row.get("meta", "")
    if not isinstance(meta, str):
        meta = json.dumps(meta, sort_keys=True, default=str)
    return {
        "id": _field(row, "id", required=False) or fallback_id,
        "category": _field(row, "category", required=False),
        "messages": messages,
        "answer": _field(row, "answer", required=False),
        "source": source,
        "meta": meta,
    }


def fallback_id(source: str, origin: str) -> str:
    """Id of a row that has none: the source label and a hash of its origin (the file's
    absolute path and the row's line or position in it). Distinct rows never share one,
    whatever the files' names, folders or listing order; a re-run gives the same ids."""
    return f"{source}-{hashlib.sha1(origin.encode()).hexdigest()[:16]}"


def prompt_text(messages: list[dict]) -> str:
    """The text that is embedded and categorised: every non-assistant turn."""
    return "\n".join(m["content"] for m in messages if m["role"] != "assistant")


def meta_dict(value) -> dict:
    """A row's meta as a dict: a JSON-object string or a dict as is; "" / None, bad JSON
    or JSON that is not an object -> {}. Never raises."""
    if isinstance(value, dict):
        return value
    if not value or not isinstance(value, (str, bytes, bytearray)):
        return {}
    try:
        meta = json.loads(value)
    except (TypeError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return {}
    return meta if isinstance(meta, dict) else {}
