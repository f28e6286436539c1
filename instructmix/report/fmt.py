"""Text of every value the report shows: numbers, intervals, mean ± std, lists and dicts.

Everything on the page goes through `text` (or a more specific helper), so the page never
shows a Python repr (`None`, `nan`, `inf`, `{'…'}`, `[{…`) and integers get thousands
separators (1,000, never 1e+03).
"""

from __future__ import annotations

import math
import re

NA = "n/a"
MINUS = "−"


def finite(v) -> float | None:
    """A finite float, or None (missing, null, bool, NaN, ±inf, not a number)."""
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        v = v.item()  # numpy scalar
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def as_float(v) -> float:
    """A float, NaN for anything that is not a number (None included); ±inf kept."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan
    return float(v)


def num(v, digits: int = 3) -> str:
    """A number for a table cell: ints (and integral floats >= 1000) with thousands
    separators, floats with `digits` decimals, tiny floats in e-notation."""
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        v = v.item()
    if v is None:
        return NA
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if not isinstance(v, float):
        return text(v)
    if math.isnan(v):
        return NA
    if math.isinf(v):
        return "∞" if v > 0 else f"{MINUS}∞"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if v != 0 and abs(v) < 0.5 * 10 ** -digits:
        return f"{v:.{max(digits - 1, 1)}e}"
    return f"{v:.{digits}f}"


def integer(v) -> str:
    """A count: 1,234 (n/a when missing)."""
    f = finite(v)
    return NA if f is None else f"{round(f):,}"


def seconds(v) -> str:
    f = finite(v)
    return NA if f is None else f"{f:,.1f}"


def text(v, digits: int = 3) -> str:
    """Any value as readable text: numbers via `num`, lists joined by ", ", dicts as
    "key: value; …", None as n/a."""
    if v is None:
        return NA
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, int, float)) or hasattr(v, "item"):
        return num(v, digits)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {text(x, digits)}" for k, x in v.items()) or "none"
    if isinstance(v, (list, tuple, set)):
        return ", ".join(f"({text(x, digits)})" if isinstance(x, (list, tuple)) else
                         text(x, digits) for x in v) or "none"
    return str(v)


def mean_std(cell, digits: int = 3) -> str:
    """{"mean", "std", "n"} as "0.412 ± 0.031"; n/a when missing."""
    if not isinstance(cell, dict) or finite(cell.get("mean")) is None:
        return NA
    std = finite(cell.get("std"))
    return f"{num(float(cell['mean']), digits)} ± {NA if std is None else num(std, digits)}"


def interval(lo, hi, digits: int = 2) -> str:
    """A confidence interval: "[0.10, 0.80]", "(−∞, ∞)" when unbounded (either side), and
    "no interval" when there is none (NaN or missing bounds, e.g. a single seed)."""
    a, b = as_float(lo), as_float(hi)
    if math.isnan(a) or math.isnan(b):
        return "no interval"
    left = f"({MINUS}∞" if a == -math.inf else f"[{num(a, digits)}"
    right = "∞)" if b == math.inf else f"{num(b, digits)}]"
    return f"{left}, {right}"


def prose(v) -> str:
    """A message written by a stage, with Python list reprs of names made plain
    ("among ['a', 'b']" -> "among a, b") and NaN / inf spelled out."""
    out = re.sub(r"\[('[^'\]]*'(?:, '[^'\]]*')*)?\]",
                 lambda m: ", ".join(re.findall(r"'([^']*)'", m.group(0))) or "none", text(v))
    out = re.sub(r"\b(NaN|nan)\b", "not a number", out)
    return re.sub(r"(-?)\binf\b", lambda m: f"{MINUS if m.group(1) else ''}∞", out)


def slug(name: str) -> str:
    """An id-safe form of a name (for SVG group ids and page anchors)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).strip("_") or "x"


def flatten(obj, prefix: str = "") -> list[tuple[str, str]]:
    """A nested dict/list as (dotted key, text) rows: a config as a readable table."""
    if isinstance(obj, dict) and obj:
        return [row for k, v in obj.items()
                for row in flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(obj, list) and any(isinstance(x, (dict, list)) for x in obj):
        return [row for k, v in enumerate(obj) for row in flatten(v, f"{prefix}[{k}]")]
    if obj is None:
        return [(prefix, "not set")]
    if isinstance(obj, (dict, list)) and not obj:
        return [(prefix, "none")]
    return [(prefix, text(obj))]
