"""The layout stays as docs/architecture.md draws it: no import cycle among the core's modules (imports under
`if TYPE_CHECKING:` and inside functions count too), contracts that depend on neither the runtime nor the
plugin host, and plugins that import only `moonship_core`'s public names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import moonship_core

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "src" / "moonship_core"
PACKAGE = "moonship_core"

#: what the contracts plugins implement may build on: the domain, the facade, and each other
CONTRACT_DEPENDENCIES = {"model", "errors", "book", "orderlevel", "config", "clock", "codec", "control"}


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(CORE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(CORE.rglob("*.py"))}


def imports(path: Path, name: str) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import statement in the file, anywhere in it."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                keep = len(base) - node.level + (1 if is_package else 0)
                target = ".".join(base[:keep] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names], node.lineno


def core_graph() -> dict[str, set[str]]:
    """Module -> the core modules it imports (a `from package import module` names the module)."""
    modules = core_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, names, _ in imports(path, name):
            if not target.startswith(PACKAGE):
                continue
            found = {f"{target}.{n}" for n in names if f"{target}.{n}" in modules}
            if len(found) < len(names) or not names:
                found.add(target)
            graph[name] |= {t for t in found if t != PACKAGE or name != PACKAGE}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve_to_core_modules() -> None:
    graph = core_graph()
    assert "moonship_core.contracts.client" in graph["moonship_core.trading.market"]
    assert "moonship_core.hookspecs" in graph["moonship_core.plugins"]  # `from . import hookspecs`
    assert "moonship_core.trading.portfolio" in graph["moonship_core.trading.market"]


def test_no_import_cycles_in_the_core() -> None:
    graph = core_graph()
    # nothing inside the core goes through the package's door: that would tie every module to every other
    assert [m for m, targets in graph.items() if PACKAGE in targets and m != PACKAGE] == []
    assert cycles(graph) == []


def test_contracts_import_neither_the_runtime_nor_the_plugin_host() -> None:
    graph = core_graph()
    allowed = {f"{PACKAGE}.{name}" for name in CONTRACT_DEPENDENCIES} | {f"{PACKAGE}.contracts"}
    for module, targets in graph.items():
        if module.startswith(f"{PACKAGE}.contracts."):
            wrong = {t for t in targets if t not in allowed and not t.startswith(f"{PACKAGE}.contracts.")}
            assert wrong == set(), f"{module} imports {sorted(wrong)}"


def plugin_sources() -> list[Path]:
    found = sorted(ROOT.glob("plugins/*/src/**/*.py")) + sorted(ROOT.glob("examples/*/src/**/*.py"))
    assert len(found) > 20  # the plugins are there: a wrong glob must not pass silently
    return found


@pytest.mark.parametrize("path", plugin_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_public_core_names(path: Path) -> None:
    public = set(moonship_core.__all__)
    wrong = []
    for target, names, line in imports(path, path.stem):
        if target == PACKAGE:
            wrong += [f"line {line}: {n}" for n in names if n not in public]
        elif target.startswith(f"{PACKAGE}."):
            wrong.append(f"line {line}: {target}")
    assert wrong == [], f"{path.name} reaches past moonship_core's public names: {wrong}"


def test_every_public_name_exists() -> None:
    assert [name for name in moonship_core.__all__ if not hasattr(moonship_core, name)] == []
