"""Canonical row schema and conversion of source rows into it.

Canonical row: id (unique str), category (str, "" = to be assigned), messages (list of
{role, content}, ending with an assistant turn), answer (str, "" if none), source (str),
meta (JSON str, "" if none). A row that does not fit raises `RowError` with a reason.
"""

from __future__ import annotations

import hashlib
import json

ROLES = {"system", "user", "assistant"}
MAPPABLE = ("instruction", "input", "output", "id", "category", "answer")


class RowError(ValueError):
    """The reason a row is rejected."""


def _text(row: dict, field: str, required: bool) -> str:
    value = row.get(field)
    if value is None:
        if required:
            raise RowError(f"missing field {field!r}")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowError(f"field {field!r} must be a string, got {type(value).__name__}")
    return str(value)


def _messages(value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RowError("field 'messages' must be a non-empty list")
    out = []
    for k, m in enumerate(value):
        if not isinstance(m, dict):
            raise RowError(f"messages[{k}] must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise RowError(f"messages[{k}].role must be one of {sorted(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise RowError(f"messages[{k}].content must be a string")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "assistant":
        raise RowError("the last message must be the assistant's response")
    if not any(m["role"] == "user" for m in out):
        raise RowError("messages has no user turn")
    return out


def detect_format(row: dict) -> str:
    if "messages" in row:
        return "messages"
    if "instruction" in row or "output" in row:
        return "alpaca"
    raise RowError("cannot tell the format: no 'messages' and no 'instruction'/'output' field")


def to_canonical(row, fmt: str, mapping: dict[str, str], source: str, fallback_id: str) -> dict:
    """Convert one parsed source row; `fallback_id` names the row when it has no id."""
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
    if fmt == "mapping":
        unknown = set(mapping) - set(MAPPABLE)
        if unknown:
            raise RowError(f"mapping names unknown canonical fields {sorted(unknown)}")
        row = {canon: row.get(src) for canon, src in mapping.items()}
        fmt = "alpaca"
    elif fmt == "auto":
        fmt = detect_format(row)
    if fmt == "messages":
        messages = _messages(row.get("messages"))
        answer = _text(row, "answer", required=False)
    else:
        instruction = _text(row, "instruction", required=True)
        inp = _text(row, "input", required=False)
        output = _text(row, "output", required=True)
        if not instruction.strip():
            raise RowError("field 'instruction' is empty")
        if not output.strip():
            raise RowError("field 'output' is empty")
        prompt = f"{instruction}\n\n{inp}" if inp.strip() else instruction
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
        answer = _text(row, "answer", required=False)
    rid = _text(row, "id", required=False) or fallback_id
    meta = row.get("meta", "")
    if not isinstance(meta, str):
        meta = json.dumps(meta, sort_keys=True, default=str)
    return {
        "id": rid,
        "category": _text(row, "category", required=False),
        "messages": messages,
        "answer": answer,
        "source": source,
        "meta": meta,
    }


def content_id(source: str, line_no: int) -> str:
    """Stable id for a row that has none: source name + position."""
    digest = hashlib.sha1(f"{source}:{line_no}".encode()).hexdigest()[:12]
    return f"{source}-{line_no}-{digest}"


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
