"""Load a run config: a YAML file, `--set KEY=VALUE` overrides, validation, and errors that
name the file, the YAML path of every bad field and its value (one line per problem)."""

from __future__ import annotations

import difflib
import json
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from instructmix.config.run import CROSS_FIELD, RunConfig
from instructmix.runtime import FAIL_AT_STEP, FAIL_TRIAL

# Keys that were part of the schema once: an old config using one is told what replaced it.
REMOVED = {
    "probes.fail_trial": f"fault injection is no longer a config field: set the environment "
                         f"variable {FAIL_TRIAL}=TRIAL_NAME instead",
    "train.fail_at_step": f"fault injection is no longer a config field: set the environment "
                          f"variable {FAIL_AT_STEP}=STEP instead",
}
MAX_VALUE_CHARS = 80


class ConfigError(ValueError):
    """A config that cannot be used; the message names the field or file."""


def _parse_value(text: str) -> Any:
    """`--set` values are YAML scalars/lists: 3 -> int, true -> bool, [a,b] -> list."""
    return yaml.safe_load(text) if text != "" else ""


def apply_override(data: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.epochs=2")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: KEY must be a dotted path, e.g. train.epochs")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = _parse_value(value)


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The section model inside a field's type (`X`, `X | None`, `list[X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_of(arg)
        if found is not None:
            return found
    return None


def _known_keys(loc: tuple) -> list[str]:
    """The keys the section holding `loc`'s last part accepts."""
    model: type[BaseModel] | None = RunConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = _field(model, part) if model else None
        model = _section_of(field.annotation) if field else None
        if model is None:
            return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _field(model: type[BaseModel], key: str):
    """The field a config key names: by its alias (`raise`) or its name."""
    return next((f for name, f in model.model_fields.items() if key in (f.alias, name)), None)


def _unknown_key(loc: tuple, where: str) -> str:
    if where in REMOVED:
        return f"unknown key: {REMOVED[where]}"
    section = ".".join(str(p) for p in loc[:-1]) or "the top level"
    key, known = str(loc[-1]), _known_keys(loc)
    close = difflib.get_close_matches(key, known, n=1) or [k for k in known if key in k][:1]
    hint = f"did you mean {close[0]!r}?" if close else "see `instructmix schema` for the keys"
    return f"unknown key in {section}; {hint}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."


def _origin(fields: list[str], file: str | None, overrides: dict[str, str]) -> str:
    """Where the values of `fields` came from: the file and the --set overrides touching
    them (an override of a section or of a key inside a field counts)."""
    sets = [a for key, a in overrides.items()
            if any(f == key or f.startswith(key + ".") or key.startswith(f + ".")
                   for f in fields)]
    parts = ([file] if file else []) + [f"--set {a}" for a in sets]
    return ", ".join(parts) or "defaults"


def _problem_lines(e: dict, file: str | None, overrides: dict[str, str]) -> list[str]:
    loc = tuple(e["loc"])
    if e["type"] == CROSS_FIELD:  # "FIELD, FIELD: message" per problem (see run.py)
        return [f"{_origin(line.split(': ', 1)[0].split(', '), file, overrides)}: {line}"
                for line in e["msg"].splitlines()]
    where = ".".join(str(p) for p in loc) or "(top level)"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = _unknown_key(loc, where)
    value = e.get("input")
    # a section's own check (input: the section) names its values in the message
    hidden = e["type"] == "missing" or (e["type"] == "value_error" and isinstance(value, dict))
    shown = "" if hidden else f" (got {_shown(value)})"
    return [f"{_origin([where], file, overrides)}: {where}: {msg}{shown}"]


def format_errors(err: ValidationError, file: str | None = None,
                  overrides: dict[str, str] | None = None) -> str:
    """One line per problem: origin (file, --set), YAML path of the field, message, value."""
    return "\n".join(line for e in err.errors()
                     for line in _problem_lines(e, file, overrides or {}))


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return data


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """The run config of YAML file `path` (None: the defaults) with `--set KEY=VALUE`
    overrides applied; ConfigError names every problem (see `format_errors`)."""
    data = _read_yaml(Path(path)) if path is not None else {}
    applied: dict[str, str] = {}
    for assignment in overrides:
        apply_override(data, assignment)
        applied[assignment.split("=", 1)[0].strip()] = assignment
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        file = str(path) if path is not None else None
        raise ConfigError(format_errors(e, file, applied)) from None


def json_schema() -> str:
    return json.dumps(RunConfig.model_json_schema(), indent=2)
