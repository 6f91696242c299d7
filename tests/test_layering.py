"""The package's layering (docs/architecture.md, "Package layering"), read from the source with ast, nothing imported.

Layers, lowest first: ops < nets < training / experiment_planning / evaluation (with synthetic, measurement, warm and the
installed trainers folder, nnunetv2_mamba.ext_trainers) < comparison < demo / cli (with doctor and __main__). A module may
import its own layer and the ones below, never one above, not even inside a function; and the imports never form a
cycle, neither the ones Python runs while importing a module nor, with them, the ones inside functions (a cycle
through a function-level import is a circle of modules that need each other, only hidden from the importer).
"""
from __future__ import annotations

import ast

import pytest

from helpers import REPO

PACKAGE = "nnunetv2_mamba"
LAYERS = {
    "ops": 0,
    "nets": 1,
    "training": 2, "experiment_planning": 2, "evaluation": 2, "synthetic": 2, "ext_trainers": 2, "measurement": 2,
    "warm": 2,
    "comparison": 3,
    "demo": 4, "cli": 4, "doctor": 4, "__main__": 4,
}
#: where each installed package's source lives (pyproject.toml's package-dir)
SOURCE_FOLDERS = {PACKAGE: REPO / PACKAGE, f"{PACKAGE}.ext_trainers": REPO / "trainers"}


def package_sources() -> dict[str, tuple[str, bool]]:
    """{dotted module name: (source text, is a package __init__)} of every module of the installed package."""
    sources = {}
    for package, folder in SOURCE_FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join([package] + (parts[:-1] if is_package else parts))
            sources[name] = (path.read_text(), is_package)
    return sources


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[str, bool, int]]:
    """(dotted name imported, at module level?, line) for every import statement of ``module``, relative imports
    resolved; ``from a import b`` yields ``a.b`` (a submodule or a name in ``a``: see :func:`existing_module`)."""
    found = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, module_level, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")[: len(module.split(".")) - child.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                found.extend((f"{base}.{alias.name}", module_level, child.lineno) for alias in child.names)
            visit(child, module_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                 ast.Lambda)))

    visit(ast.parse(source), True)
    return found


def existing_module(name: str, modules) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (``a.b`` of ``from a import b`` when b is a
    submodule, else ``a``), or None for a module outside the package."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def import_graph(sources: dict[str, tuple[str, bool]], module_level_only: bool) -> dict[str, dict[str, int]]:
    """{module: {imported package module: line}}. Importing ``a.b.c`` also runs the packages ``a.b`` and ``a``:
    those count too, except the importer's own enclosing packages, which are already being imported."""
    graph = {}
    for module, (source, is_package) in sources.items():
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1 + is_package)}
        edges = {}
        for name, module_level, line in imported_modules(source, module, is_package):
            target = existing_module(name, sources)
            if target is None or (module_level_only and not module_level):
                continue
            parts = target.split(".")
            for end in range(2, len(parts) + 1):
                imported = ".".join(parts[:end])
                if imported != module and imported not in own_packages:
                    edges.setdefault(imported, line)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of ``graph`` as [m0, m1, ..., m0], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, {}):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def layer_name(module: str) -> str:
    """The LAYERS key of ``nnunetv2_mamba.<key>[...]``; the package root itself is '' (it imports nothing)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    """'module:line imports target (layer a < layer b)' for every import from a lower layer to a higher one."""
    found = []
    for module, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            low, high = LAYERS.get(layer_name(module), 0), LAYERS.get(layer_name(target), 0)
            if high > low:
                found.append(f"{module}:{line} imports {target} (layer {layer_name(module)} {low} < "
                             f"{layer_name(target)} {high})")
    return found


@pytest.fixture(scope="module")
def sources():
    return package_sources()


def test_every_module_belongs_to_a_layer(sources):
    unplaced = sorted({layer_name(m) for m in sources} - set(LAYERS) - {""})
    assert not unplaced, (f"{unplaced}: give each new subpackage or top-level module a layer in LAYERS here and in "
                          f"docs/architecture.md, 'Package layering'")


def test_no_import_cycle_at_module_level(sources):
    cycle = find_cycle(import_graph(sources, module_level_only=True))
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_through_function_level_imports(sources):
    cycle = find_cycle(import_graph(sources, module_level_only=False))
    assert cycle is None, "import cycle (function-level imports included): " + " -> ".join(cycle)


def test_no_import_from_a_lower_layer_to_a_higher_one(sources):
    violations = upward_imports(import_graph(sources, module_level_only=False))
    assert not violations, "a lower layer imports a higher one:\n" + "\n".join(violations)


def test_the_checks_see_function_level_relative_and_package_imports():
    """The checks on a made-up package: a cycle through a package __init__, and an upward import hidden in a
    function as a relative import, are both found; function-level imports make no module-level cycle, but the full
    check finds the cycle they close."""
    made_up = {
        f"{PACKAGE}.ops": ("from nnunetv2_mamba.ops.scan import run\n", True),
        f"{PACKAGE}.ops.scan": ("def run():\n    from ..nets import model\n", False),
        f"{PACKAGE}.nets": ("from nnunetv2_mamba.nets.model import Net\n", True),
        f"{PACKAGE}.nets.model": ("import nnunetv2_mamba.ops.scan\nfrom . import helper\n", False),
        f"{PACKAGE}.nets.helper": ("from nnunetv2_mamba.nets.model import Net\n", False),
    }
    assert find_cycle(import_graph(made_up, module_level_only=True)) == [
        f"{PACKAGE}.nets.model", f"{PACKAGE}.nets.helper", f"{PACKAGE}.nets.model"]
    assert upward_imports(import_graph(made_up, module_level_only=False)) == [
        f"{PACKAGE}.ops.scan:2 imports {PACKAGE}.nets (layer ops 0 < nets 1)",
        f"{PACKAGE}.ops.scan:2 imports {PACKAGE}.nets.model (layer ops 0 < nets 1)"]
    del made_up[f"{PACKAGE}.nets.helper"]
    made_up[f"{PACKAGE}.nets.model"] = ("import nnunetv2_mamba.ops.scan\n", False)
    assert find_cycle(import_graph(made_up, module_level_only=True)) is None
    assert find_cycle(import_graph(made_up, module_level_only=False)) == [
        f"{PACKAGE}.nets", f"{PACKAGE}.nets.model", f"{PACKAGE}.ops", f"{PACKAGE}.ops.scan", f"{PACKAGE}.nets"]
