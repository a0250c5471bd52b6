"""Each project (the core, every plugin, the example algos) declares exactly the distributions its code
imports: nothing missing, so an install of it alone works, and nothing it never imports. A subpackage whose
imports an optional extra provides (the core's test kit) declares them in that extra."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PROJECTS = [ROOT, *(p.parent for p in sorted(ROOT.glob("plugins/*/pyproject.toml")))]
PROJECTS += [p.parent for p in sorted(ROOT.glob("examples/*/pyproject.toml"))]
#: distributions that come with (and are pinned by) another one, which is what a project declares
BUNDLED = {"pydantic-core": "pydantic"}
#: subpackages whose third-party imports are an optional extra's: folder below src/ -> extra
OPTIONAL = {ROOT / "src" / "moonship_core" / "testing": "testing"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(project: Path, extra: str | None = None) -> set[str]:
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    dependencies = meta["optional-dependencies"][extra] if extra else meta["dependencies"]
    return {_normalise(re.split(r"[^A-Za-z0-9._-]", d, maxsplit=1)[0]) for d in dependencies}


def _imported(project: Path, folder: Path | None = None) -> set[str]:
    """The distributions providing the top-level modules that the project's code imports (the code in
    `folder` only when given, else all of it but the OPTIONAL folders)."""
    src = project / "src"
    own = {p.name for p in src.iterdir() if p.is_dir() and not p.name.endswith(".egg-info")}
    modules: set[str] = set()
    files = [f for f in src.rglob("*.py") if not set(f.parents) & set(OPTIONAL)]
    for file in folder.rglob("*.py") if folder else files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    modules -= own | set(sys.stdlib_module_names) | {"__future__"}
    providers = metadata.packages_distributions()
    distributions = set()
    for module in modules:
        if module.startswith("moonship_"):  # editable installs of this repo's projects
            distributions.add(_normalise(module))
        else:
            assert module in providers, f"{project.name}: nothing installed provides {module!r}"
            distributions.update(BUNDLED.get(d, d) for d in map(_normalise, providers[module]))
    return distributions


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_declares_what_it_imports_and_nothing_else(project: Path) -> None:
    assert _imported(project) == _declared(project)


def test_the_core_needs_no_async_compatibility_layer() -> None:
    assert "anyio" not in _declared(ROOT)


@pytest.mark.parametrize("folder", OPTIONAL, ids=lambda f: f.name)
def test_an_optional_subpackage_declares_its_imports_in_its_extra(folder: Path) -> None:
    assert _imported(ROOT, folder) - _declared(ROOT) == _declared(ROOT, OPTIONAL[folder])

