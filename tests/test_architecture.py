"""The package's shape: imports point down the layers, no module imports in a circle, no
module spells another stage's artifact path, files and functions stay short."""

from __future__ import annotations

import ast
from pathlib import Path

from instructmix.layout import ARTIFACTS

PKG = Path(__file__).resolve().parents[1] / "instructmix"
# Lowest first; a part may import only parts of a lower layer (same layer: none).
LAYERS = [
    ("storage",),
    ("grammar", "runtime", "layout"),
    ("config",),
    ("cluster",),
    ("data",),
    ("training",),
    ("generation",),
    ("evaluation",),
    ("probes",),
    ("selectors",),
    ("augment",),
    ("experiments",),
    ("report",),
    ("pipeline",),
    ("cli",),
]
RANK = {part: k for k, parts in enumerate(LAYERS) for part in parts}
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS: dict[str, str] = {}  # "module:function" -> why it stays long


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        name = ".".join(("instructmix", *f.relative_to(PKG).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = f
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """instructmix modules imported anywhere in the file (lazy imports included)."""
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        deps |= {n for n in names if n in modules}
    return deps


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_every_part_has_a_layer():
    parts = {_part(m) for m in _modules() if m != "instructmix"}
    assert parts <= set(RANK), f"add {sorted(parts - set(RANK))} to LAYERS"


def test_imports_point_down_the_layers():
    modules = _modules()
    upward = []
    for name, path in modules.items():
        for dep in _imports(path, modules):
            a, b = _part(name), _part(dep)
            if a != b and a in RANK and b in RANK and RANK[b] >= RANK[a]:
                upward.append(f"{name} -> {dep}")
    assert not upward, "imports that do not point to a lower layer:\n" + "\n".join(upward)


def test_no_import_cycle():
    modules = _modules()
    graph = {m: {d for d in _imports(p, modules) if d != m and not m.startswith(d + ".")}
             for m, p in modules.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (documentation may name artifacts; code may not)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value,
                                                                     ast.Constant):
                out.add(id(body[0].value))
    return out


def test_only_the_layout_spells_artifact_paths():
    names = {a.name for a in ARTIFACTS if "." in a.name}
    spelled = []
    for name, path in _modules().items():
        if name == "instructmix.layout":
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docs):
                hits = [n for n in names if n in node.value]
                spelled += [f"{name}:{node.lineno}: {h!r}" for h in hits]
    assert not spelled, "artifact names outside layout.py:\n" + "\n".join(spelled)


def test_files_and_functions_stay_short():
    long_files, long_functions = [], []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                key = f"{name}:{node.name}"
                if n > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    long_functions.append(f"{key}: {n} lines")
    assert not long_files, long_files
    assert not long_functions, long_functions
