"""The package layout stays acyclic: no import cycle between modules, none between packages.

Imports are read from the source (``ast``), lazy ones inside functions included, those under
``if TYPE_CHECKING:`` excluded. The root ``polytask/__init__.py`` is the public facade and may
reach everything; nothing inside the package imports it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "polytask"


def module_names(root: Path = PACKAGE) -> dict[str, Path]:
    names = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the polytask modules it imports (a name imported from a package counts as its submodule if one exists)."""
    modules = module_names(root)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only = {id(node) for branch in ast.walk(tree) if isinstance(branch, ast.If)
                     and "TYPE_CHECKING" in ast.unparse(branch.test) for node in ast.walk(branch)}
        targets = set()
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "polytask":
                targets |= {resolve(f"{node.module}.{alias.name}") for alias in node.names}
            elif isinstance(node, ast.Import):
                targets |= {resolve(alias.name) for alias in node.names if alias.name.split(".")[0] == "polytask"}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each a cycle or a knot of cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == "polytask":
            continue
        packages.setdefault(package_of(module), set()).update(
            package_of(t) for t in targets if package_of(t) != package_of(module))
    return packages


def test_no_module_imports_the_public_facade() -> None:
    importers = sorted(m for m, targets in import_graph().items() if "polytask" in targets)
    assert importers == [], f"{importers} import the root polytask package; import the defining module instead"


def test_no_import_cycle_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph(import_graph())
    found = cycles(graph)
    details = {pkg: sorted(graph[pkg] & set(c)) for c in found for pkg in c}
    assert found == [], f"package cycle(s) {found}: {details}"


def test_data_is_the_bottom_layer() -> None:
    """Readers, vocabularies and batching import neither the models nor the tasks (they declare what they need)."""
    assert package_graph(import_graph())["data"] <= {"config", "errors", "dependencies"}


@pytest.mark.parametrize("graph,expected", [
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_cycles(graph, expected) -> None:
    assert cycles(graph) == expected


def test_the_graph_reader_sees_lazy_imports_and_skips_type_checking(tmp_path: Path) -> None:
    root = tmp_path / "polytask"
    (root / "x").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "x" / "__init__.py").write_text("")
    (root / "x" / "a.py").write_text("def f():\n    from polytask.x.b import g\n")
    (root / "x" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from polytask.x import a\n")
    graph = import_graph(root)
    assert graph["polytask.x.a"] == {"polytask.x.b"} and graph["polytask.x.b"] == set()
