"""`moonship new-algo`: the project it writes installs with pip and runs as generated; the README's plugin
guide shows exactly those files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moonship_core import cli
from moonship_core.scaffold import algo_project

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_guide_shows_the_generated_files() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index("### Writing an algorithm plugin"), readme.index("### Distributed deployment")
    section = readme[start:end]
    shown = dict(re.findall(r"^`dipper/([^`]+)`:\n\n```\w*\n(.*?)^```$", section, re.MULTILINE | re.DOTALL))
    generated = algo_project("dipper")
    assert set(shown) == set(generated) - {"README.md"}
    for path, text in shown.items():
        assert text == generated[path], path


def test_new_algo_refuses_bad_names_and_existing_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["new-algo", "Dip-per", "--dir", str(tmp_path)]) == 2
    assert "'Dip-per' is not a usable algo name" in capsys.readouterr().err
    assert cli.main(["new-algo", "dipper", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "dipper" / "src" / "dipper" / "algo.py").exists()
    assert cli.main(["new-algo", "dipper", "--dir", str(tmp_path)]) == 2
    assert "exists: not overwritten" in capsys.readouterr().err


@pytest.mark.slow
def test_generated_project_installs_tests_and_runs(tmp_path: Path) -> None:
    """pip install (no deps, no build isolation: offline, the current interpreter's setuptools) into a folder
    of its own, then the project's own tests, `config check` and `run` until SIGTERM, as generated."""
    assert cli.main(["new-algo", "my_dip", "--dir", str(tmp_path)]) == 0
    project = tmp_path / "my_dip"
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
         str(site), str(project)],
        check=True, capture_output=True, timeout=120,
    )
    assert (site / "my_dip" / "algo.py").exists()  # installed, not imported from the project folder
    env = {**os.environ, "PYTHONPATH": str(site)}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    check = subprocess.run(
        [sys.executable, "-m", "moonship_core", "config", "check", "-c", "config.yml"],
        cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert (check.returncode, check.stdout) == (0, "OK: 1 markets, 1 strategies\n"), check.stderr
    run = subprocess.Popen(
        [sys.executable, "-m", "moonship_core", "run", "-c", "config.yml"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    time.sleep(3)
    run.send_signal(signal.SIGTERM)
    output, _ = run.communicate(timeout=30)
    assert run.returncode == 0, output
    assert "moonship.strategy.my_dip: started (my_dip on btc)" in output
