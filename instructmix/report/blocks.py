"""The building blocks of a report section, rendered by `templates/page.html.j2`.

A section is {"title", "id", "blocks"}; a block is a dict with a `kind` (table, figure,
note, na, problem, heading, list, details). Cells and texts are strings made by `fmt`, so
the template only escapes and places them; only figures (SVG from matplotlib, whose text is
already XML-escaped) are marked safe.
"""

from __future__ import annotations

from markupsafe import Markup

from instructmix.report.fmt import slug, text


def cell(v, digits: int = 3) -> str:
    return v if isinstance(v, str) else text(v, digits)


def table(headers, rows, caption: str | None = None, digits: int = 3) -> dict:
    return {"kind": "table", "headers": [cell(h) for h in headers],
            "rows": [[cell(c, digits) for c in r] for r in rows], "caption": caption}


def figure(svg: str, caption: str | None = None) -> dict:
    return {"kind": "figure", "svg": Markup(svg), "caption": caption}


def note(msg: str) -> dict:
    """An explanatory caption: what the numbers above or below are."""
    return {"kind": "note", "text": msg}


def na(msg: str) -> dict:
    """Something the section cannot show (an input is missing or a stage did not run)."""
    return {"kind": "na", "text": msg}


def problem(msg: str) -> dict:
    """An input that exists but could not be read (named with file and line)."""
    return {"kind": "problem", "text": msg}


def heading(msg: str) -> dict:
    return {"kind": "heading", "text": msg}


def bullets(items, caption: str | None = None) -> dict:
    return {"kind": "list", "entries": [cell(x) for x in items], "caption": caption}


def details(summary: str, blocks: list[dict]) -> dict:
    return {"kind": "details", "summary": summary, "blocks": blocks}


def section(title: str, blocks: list[dict]) -> dict:
    return {"title": title, "id": slug(title).lower(), "blocks": blocks}
