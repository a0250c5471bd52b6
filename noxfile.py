"""Developer sessions: `nox` runs tests, lint and typecheck; `nox -s bench` and `nox -s demo` on demand.

Each session has its own virtualenv (reused between runs) on the interpreter that runs nox.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]

ROOT = Path(__file__).parent


def editables(*, test_extras: bool) -> list[str]:
    """`-e` arguments for the core and every plugin and example project (with its `test` extra, if asked
    and it has one), all in one install so that they resolve against each other, not against PyPI."""
    projects = [ROOT, *(p.parent for p in sorted(ROOT.glob("plugins/*/pyproject.toml")))]
    projects += [p.parent for p in sorted(ROOT.glob("examples/*/pyproject.toml"))]
    args = []
    for project in projects:
        metadata = tomllib.loads((project / "pyproject.toml").read_text()).get("project", {})
        has_test = "test" in metadata.get("optional-dependencies", {})
        args += ["-e", f"{project}[test]" if test_extras and has_test else str(project)]
    return args


@nox.session(reuse_venv=True)
def tests(session: nox.Session) -> None:
    """The whole test suite (arguments after `--` go to pytest)."""
    session.install(*editables(test_extras=True))
    session.run("pytest", *session.posargs)


@nox.session(reuse_venv=True)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", *session.posargs)


@nox.session(reuse_venv=True)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the files configured in pyproject.toml (the core, every plugin, the examples)."""
    session.install(*editables(test_extras=True))
    session.run("mypy", *session.posargs)


@nox.session(reuse_venv=True)
def bench(session: nox.Session) -> None:
    """Every bench/bench_*.py script in turn (arguments after `--` go to each), with the peers of pyproject's
    `bench` dependency group installed."""
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    session.install(*editables(test_extras=True), *groups["bench"])
    for script in sorted(ROOT.glob("bench/bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session(reuse_venv=True)
def docs(session: nox.Session) -> None:
    """The documentation site into site/: `mkdocs build --strict` (`nox -s docs -- serve` to preview)."""
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    session.install(*editables(test_extras=False), *groups["docs"])
    session.run("mkdocs", *(session.posargs or ["build", "--strict"]))


@nox.session(reuse_venv=True)
def demo(session: nox.Session) -> None:
    """Paper trading on the offline simulator, until interrupted (Ctrl-C)."""
    session.install(*editables(test_extras=False))
    session.run("moonship", "run", "-c", str(ROOT / "examples" / "paper.yml"), *session.posargs)
