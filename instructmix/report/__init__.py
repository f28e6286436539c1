"""The run report (the last stage): `run_report(cfg, layout)` writes the report's JSON
(`REPORT.json`) and a self-contained page (`REPORT.html`) with matplotlib figures inlined as SVG.

Modules, lowest first (each imports only the ones above it): `fmt` (text of every value),
`blocks` (what a section is made of), `figures` and `probe_figures` (matplotlib -> inline
SVG), `inputs` (every input, read through the run layout), the sections (`pool`,
`evaluation`, `training`, `mix`, `raise_section`, `compare`, `augment`, `overview`), `page`
(the jinja2 template) and `stage` (the entry point).
"""

from instructmix.report.stage import run_report

__all__ = ["run_report"]
