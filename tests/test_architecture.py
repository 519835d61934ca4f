"""The layout rules of docs/architecture.md, checked on the source tree: no import cycle between
modules (module-level imports), no import of another module's underscore name, no source file over
600 lines, and the core (symdiff/) never imports a backend module."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"symdiff": ROOT / "symdiff", "symdiff.codegen": ROOT / "codegen"}
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    mods = {}
    for prefix, folder in PACKAGES.items():
        for p in folder.rglob("*.py"):
            parts = list(p.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([prefix] + parts)] = p
    return mods


MODULES = _modules()


def _imports(name: str, path: Path, toplevel_only: bool):
    """(imported module, imported names) of a module, relative imports resolved."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if toplevel_only else list(ast.walk(tree))
    for n in nodes:
        if isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                up = pkg.split(".")[: len(pkg.split(".")) - (n.level - 1)]
                base = ".".join(up) + ("." + n.module if n.module else "")
            for a in n.names:
                sub = f"{base}.{a.name}"
                yield (sub, []) if sub in MODULES else (base, [a.name])
        elif isinstance(n, ast.Import):
            for a in n.names:
                yield a.name, []


def test_the_tree_is_where_the_tests_look():
    assert "symdiff.compiled" in MODULES and "symdiff.codegen.lower" in MODULES and len(MODULES) > 50


def test_no_import_cycles():
    g = nx.DiGraph()
    for name, path in MODULES.items():
        for mod, _ in _imports(name, path, toplevel_only=True):
            if mod in MODULES and mod != name and not name.startswith(mod + "."):
                g.add_edge(name, mod)
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_no_cross_module_underscore_imports():
    bad = []
    for name, path in MODULES.items():
        for mod, names in _imports(name, path, toplevel_only=False):
            bad += [f"{name}: from {mod} import {n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("folder", ["symdiff", "codegen", "tests", "benchmarks", "examples"])
def test_no_file_over_600_lines(folder):
    long = [f"{p.relative_to(ROOT)}: {n}" for p in (ROOT / folder).rglob("*")
            if p.suffix in (".py", ".c", ".h") and (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, long


def test_core_never_imports_a_backend_module():
    core = {n: p for n, p in MODULES.items() if not n.startswith("symdiff.codegen")}
    bad = [f"{n} imports {m}" for n, p in core.items() for m, _ in _imports(n, p, toplevel_only=False)
           if m.startswith("symdiff.codegen") and n != "symdiff.cli" and not n.startswith("symdiff.cli.")]
    assert not bad, bad
