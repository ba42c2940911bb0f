"""The shape of the Python package (DESIGN.md, "Layers of the Python
package"), read from the source with ast, so that it stays true:

- every module belongs to a layer, and imports only from its own layer or
  below (imports inside functions count);
- no import cycle between modules;
- only the modules allowed to may import (or reach as an attribute) the
  compiled modules _C and _C_cuda;
- no module is longer than MAX_LINES.

A new module is placed by its name in LAYERS (a package by its folder):
one entry here, and the rules hold for it too."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "python" / "fastnn"

# top to bottom; a module may import from its own layer and those after it
LAYERS = [
    ("package", ["__init__"]),
    ("training", ["models", "callbacks", "metrics", "data", "datasets", "keras", "distributed",
                  "explain"]),
    ("modules", ["nn", "optim", "losses", "regularizers"]),
    ("ops", ["functional", "kernels"]),
    ("core", ["tensor", "autograd"]),
    ("device", ["_backend", "cuda"]),
    ("leaves", ["_checks", "_random", "_C", "_C_cuda"]),
]
COMPILED = {"fastnn._C", "fastnn._C_cuda"}
MAY_IMPORT_COMPILED = {"fastnn", "fastnn._backend", "fastnn.kernels", "fastnn.cuda"}
MAX_LINES = 600


def _modules(package):
    """{dotted name: path} of every module of a package folder."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules(PACKAGE)
RANK = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def _top(module):
    """The entry of LAYERS a module belongs to: its first name below fastnn."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _resolve(module, path, node, modules):
    """The absolute names an import statement in `module` refers to."""
    is_package = path.name == "__init__.py"
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = module.split(".")
    if node.level:
        base = base[:len(base) - node.level + (1 if is_package else 0)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module
    # `from pkg import name` may name a submodule or an object of pkg
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules or
            f"{prefix}.{a.name}" in COMPILED else prefix for a in node.names]


def _imports(module, path, modules):
    """{imported fastnn module (or compiled module): line} for a module, imports
    inside functions included."""
    tree = ast.parse(path.read_text(), str(path))
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in _resolve(module, path, node, modules):
                if name.split(".")[0] == "fastnn":
                    found.setdefault(name, node.lineno)
    return found


def _graph(modules):
    return {m: _imports(m, p, modules) for m, p in modules.items()}


GRAPH = _graph(MODULES)


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if _top(m) not in RANK)
    assert not unplaced, f"modules missing from LAYERS in {__file__}: {unplaced}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_or_sideways(module):
    here = RANK[_top(module)]
    upward = [f"{name} (line {line})" for name, line in GRAPH[module].items()
              if name in MODULES or name in COMPILED
              if RANK[_top(name)] < here]
    assert not upward, f"{module} ({LAYERS[here][0]}) imports from a higher layer: {upward}"


def _cycle(graph):
    """One import cycle of the graph as a list of modules, or None. A
    package importing its own submodules (its __init__'s job) is no edge."""
    edges = {m: [n for n in graph[m] if n in graph and n != m and not n.startswith(m + ".")]
             for m in graph}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in edges[m]:
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_device_modules_touch_the_compiled_ones(module):
    if module in MAY_IMPORT_COMPILED or any(module.startswith(m + ".")
                                            for m in MAY_IMPORT_COMPILED - {"fastnn"}):
        return  # one of them, or a module of such a package (fastnn._backend.cpu)
    imported = [f"{n} (line {line})" for n, line in GRAPH[module].items() if n in COMPILED]
    tree = ast.parse(MODULES[module].read_text())
    reached = [f".{node.attr} (line {node.lineno})" for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr in ("_C", "_C_cuda")]
    assert not imported + reached, (f"{module} uses the compiled modules directly; go through "
                                    f"fastnn._backend: {imported + reached}")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_too_long(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (at most {MAX_LINES}): split it by concern"


def test_the_rules_catch_what_they_forbid(tmp_path):
    """The reading above on a made-up package: an upward import inside a
    function is found, and so is the cycle it closes."""
    pkg = tmp_path / "fastnn"
    (pkg / "nn").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import nn\n")
    (pkg / "nn" / "__init__.py").write_text("def f():\n    from ..models import Sequential\n")
    (pkg / "models.py").write_text("from .nn import Module\n")
    graph = _graph(_modules(pkg))
    assert "fastnn.models" in graph["fastnn.nn"]  # found inside the function
    assert RANK[_top("fastnn.models")] < RANK[_top("fastnn.nn")]  # and it points up
    assert _cycle(graph) == ["fastnn.models", "fastnn.nn", "fastnn.models"]
