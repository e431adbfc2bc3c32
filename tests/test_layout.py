"""The package's shape: layers without import circles, modules and functions short enough to read.

CONVENTIONS.md lists the layers; a module may import (at module level or inside a function) only from its
own layer or a lower one, so no import circle can form between layers, and none is allowed inside one.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emovae_utils"

# lowest first, as in CONVENTIONS.md
LAYERS = [
    ("foundations", ["io", "paths", "resources", "extras"]),
    ("signal", ["dsp", "inversion"]),
    ("data", ["data", "download", "conditions", "protocols", "testspeech"]),
    ("models", ["models", "accel"]),
    ("training", ["convergence", "train", "callbacks", "generate"]),
    ("measurement", ["metrics", "judges"]),
    ("experiments", ["trial", "runners", "experiments", "replication", "ceiling", "beyond", "conversion", "hearing"]),
    ("presentation", ["plotting", "explorer", "widgets"]),
    ("front ends", ["pipeline", "cli", "readme"]),
]
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 120


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules ``name`` imports anywhere in its source (absolute names)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in known and c != name}
    return found


def _layer(name: str) -> int | None:
    top = name.split(".")[1] if "." in name else None
    return next((i for i, (_, members) in enumerate(LAYERS) if top in members), None)


def test_every_module_has_a_layer():
    missing = sorted(n for n in _modules() if n != "emovae_utils" and _layer(n) is None)
    assert not missing, f"modules without a layer (add them to LAYERS and CONVENTIONS.md): {missing}"


def test_no_module_imports_from_a_higher_layer():
    modules = _modules()
    upward = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
              for m, p in modules.items() if _layer(m) is not None
              for t in sorted(_imports(m, p, set(modules))) if _layer(t) is not None and _layer(t) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    modules = _modules()
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    # a package imports its submodules (its __init__ re-exports them); only circles between modules count
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    circles = []

    def visit(node, stack, seen):
        for nxt in sorted(graph[node]):
            if nxt in stack:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in seen:
                seen.add(nxt)
                visit(nxt, stack + [nxt], seen)

    for start in sorted(graph):
        visit(start, [start], {start})
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles[:5])


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_are_short(path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path.name} has over {MAX_MODULE_LINES} lines: split it"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines in {path.name}: {long}"


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path):
    """Control: a planted circle (a function-level import included) is read, and it goes upward."""
    pkg = tmp_path / "emovae_utils"
    pkg.mkdir()
    (pkg / "io.py").write_text("def f():\n    from .train import fit\n")
    (pkg / "train.py").write_text("from .io import f\n")
    known = {"emovae_utils.io", "emovae_utils.train"}
    assert _imports("emovae_utils.io", pkg / "io.py", known) == {"emovae_utils.train"}
    assert _imports("emovae_utils.train", pkg / "train.py", known) == {"emovae_utils.io"}
    assert _layer("emovae_utils.train") > _layer("emovae_utils.io")  # so io's import is refused
