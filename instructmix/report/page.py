"""The report page: sections rendered by the jinja2 template `templates/page.html.j2`
(autoescaped; only the inline SVG figures are marked safe)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from instructmix.report.fmt import text

TEMPLATES = Path(__file__).parent / "templates"


def _finalize(v):
    """Whatever reaches the page as a value is text: no None, nan or True leaks."""
    if v is None or isinstance(v, (bool, int, float)):
        return text(v)
    return v


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, finalize=_finalize,
                              keep_trailing_newline=True)


def render_page(**context) -> str:
    """context: run_dir, run_name, generated_at, strategy, headline (lines), problems,
    sections (see `instructmix.report.blocks`)."""
    return environment().get_template("page.html.j2").render(**context)
