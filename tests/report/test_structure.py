"""The report package's shape: no import cycle inside it, imports only to lower layers, no
artifact file name spelled in its code or templates, short files and functions."""

from __future__ import annotations

import ast
from pathlib import Path

import instructmix.report
from instructmix.layout import ARTIFACTS

PKG = Path(instructmix.report.__file__).parent
LOWER = {"grammar", "runtime", "layout", "config", "cluster", "data", "training", "generation",
         "evaluation", "probes", "selectors", "augment", "experiments"}


def _imports() -> dict[str, set[str]]:
    """report module -> instructmix modules it imports (lazy imports included)."""
    out = {}
    for f in sorted(PKG.glob("*.py")):
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        out[f.stem] = {d for d in deps if d.startswith("instructmix")}
    return out


def test_no_cycle_inside_report_and_only_lower_layers():
    graph = {}
    for mod, deps in _imports().items():
        inside = {d.split(".")[2] if d.count(".") >= 2 else "__init__"
                  for d in deps if d.startswith("instructmix.report")}
        outside = {d.split(".")[1] for d in deps if not d.startswith("instructmix.report")}
        assert outside <= LOWER, f"{mod} imports {outside - LOWER}"
        graph[mod] = inside - {mod}
    assert "__init__" not in set().union(*graph.values()), "a module imports the package"
    done: set[str] = set()

    def visit(m: str, path: tuple[str, ...]) -> None:
        assert m not in path, " -> ".join((*path, m))
        if m not in done:
            for d in graph.get(m, ()):
                visit(d, (*path, m))
            done.add(m)

    for m in graph:
        visit(m, ())


def test_no_artifact_file_name_in_code_or_templates():
    names = {a.name for a in ARTIFACTS if "." in a.name}
    for f in [*PKG.glob("*.py"), *PKG.glob("templates/*")]:
        text = f.read_text()
        assert not [n for n in names if n in text], f.name


def test_files_and_functions_stay_short():
    for f in PKG.glob("*.py"):
        text = f.read_text()
        assert len(text.splitlines()) <= 400, f.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno < 60, f"{f.name}:{node.name}"
