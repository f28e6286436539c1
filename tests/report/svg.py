"""Helpers of the report tests: the inline SVG figures of a page, parsed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

REPR_PATTERNS = [r"\{'", r"\[\{", r"\['", r"\bNone\b", r"\bnan\b", r"\bNaN\b", r"\binf\b",
                 r"\bInfinity\b", r"\bTrue\b", r"\bFalse\b", r"\de\+\d", r"\[n/a"]


def svgs(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.S)


def parse(svg: str) -> ET.Element:
    """An inline figure as XML (the page drops the namespace declarations)."""
    return ET.fromstring(svg.replace("xlink:href", "href"))


def figure_titled(page: str, title: str) -> ET.Element:
    found = [s for s in svgs(page) if f'aria-label="{title}"' in s]
    assert len(found) == 1, f"{len(found)} figures titled {title!r}"
    return parse(found[0])


def groups(root: ET.Element, suffix: str) -> list[ET.Element]:
    """<g> elements whose id ends with `suffix` (ids carry a per-figure prefix)."""
    return [g for g in root.iter("g") if g.get("id", "").endswith(suffix)]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()).strip() for t in root.iter("text")]


def leaks(page: str) -> list[str]:
    """Python reprs, JSON non-numbers and e-notation integers on the page (SVG path data
    and attributes aside: only text content is looked at)."""
    visible = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    visible = re.sub(r"<[^>]*>", " ", visible)
    return [f"{p}: …{visible[max(0, m.start() - 40):m.end() + 40]}…"
            for p in REPR_PATTERNS for m in re.finditer(p, visible)]
