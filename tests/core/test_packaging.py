"""What a user installs: every distribution has its LICENSE (License-File), authors, project URLs, the
classifiers, a README of its own written for whoever pip-installed it, no developer tools in its published
extras; the plugins share the core's version and require `moonship-core>=2,<3`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = [ROOT, *sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))]
PROJECTS += sorted(p.parent for p in ROOT.glob("examples/*/pyproject.toml"))
DEV_TOOLS = {"nox", "ruff", "mypy", "types-pyyaml", "setuptools", "wheel"}


def metadata(project: Path) -> dict[str, object]:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def name_of(requirement: str) -> str:
    return re.split(r"[^A-Za-z0-9._-]", requirement, maxsplit=1)[0].lower()


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_published_metadata(project: Path) -> None:
    meta = metadata(project)
    assert meta["license"] == "MIT" and meta["license-files"] == ["LICENSE"]
    assert (project / "LICENSE").read_text().startswith("MIT License")
    assert meta["authors"]
    assert {"Homepage", "Source", "Changelog"} <= set(meta["urls"])  # type: ignore[arg-type]
    assert {"Typing :: Typed", "Framework :: AsyncIO"} <= set(meta["classifiers"])  # type: ignore[arg-type]
    readme = (project / str(meta["readme"])).read_text()
    # written for someone who pip-installed it: nothing that exists only in a checkout of this repository
    for checkout_only in ("requirements-dev.txt", "examples/paper.yml", ".venv/", "noxfile", "-e plugins/"):
        assert checkout_only not in readme, (project.name, checkout_only)
    assert "pip install" in readme
    for extra, requirements in meta.get("optional-dependencies", {}).items():  # type: ignore[attr-defined]
        assert not DEV_TOOLS & {name_of(r) for r in requirements}, (project.name, extra)


def test_one_version_and_the_core_requirement() -> None:
    core = metadata(ROOT)
    major = int(str(core["version"]).split(".")[0])
    for project in PROJECTS[1:]:
        meta = metadata(project)
        if project.parent.name == "plugins":
            assert meta["version"] == core["version"], project.name
        dependencies: list[str] = meta["dependencies"]  # type: ignore[assignment]
        requirements = [r for r in dependencies if name_of(r) == "moonship-core"]
        assert requirements == [f"moonship-core>={major},<{major + 1}"], project.name


def test_developer_tools_are_a_dependency_group_and_in_requirements_dev() -> None:
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    assert {name_of(r) for r in groups["dev"]} == DEV_TOOLS
    assert {name_of(r) for r in groups["docs"]} == {"mkdocs", "mkdocs-material"}
    lines = [line.strip() for line in (ROOT / "requirements-dev.txt").read_text().splitlines()]
    assert set(groups["dev"]) | set(groups["docs"]) <= set(lines)


def test_a_changelog() -> None:
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")
