"""The first run, as a user has it: the built wheels of moonship-core and moonship-valr installed in a fresh
venv (no system site-packages, nothing of this checkout on the path), then `moonship init`, `config check`,
`run` until SIGTERM (paper over the offline sim market trades; over VALR without a network: one clear line
per strategy, retried), `new-algo` output installed and run, and config mistakes listed at once (exit 2).

Offline-safe and fast: the wheels are built without build isolation, their dependencies come from a
wheelhouse `pip wheel` builds (from pip's cache after the first run), and pip installs with --no-index."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: what moonship-core and moonship-valr need, from the same pins as the projects
DEPENDENCIES = ["pluggy>=1.5", "redis>=5.0", "pydantic>=2.7", "PyYAML>=6.0", "orjson>=3.9", "httpx>=0.27",
                "picows>=2.3", "websockets>=13", "prometheus-client>=0.20", "rich>=13"]
#: what building the `new-algo` project without build isolation (no index) needs in the venv
BUILD_TOOLS = ["setuptools>=77", "wheel"]

pytestmark = pytest.mark.slow


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, check=False,
                          **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with moonship-core and moonship-valr installed from their wheels; its bin folder."""
    base = tmp_path_factory.mktemp("wheels")
    wheels, house, env = base / "wheels", base / "house", base / "venv"
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels,
                ROOT, ROOT / "plugins" / "moonship-valr")
    assert built.returncode == 0, built.stderr
    deps = run(sys.executable, "-m", "pip", "wheel", "-q", "-w", house, *DEPENDENCIES, *BUILD_TOOLS)
    if deps.returncode != 0:
        pytest.skip(f"no wheelhouse for the dependencies (offline, empty pip cache?): {deps.stderr[-300:]}")
    created = run(sys.executable, "-m", "venv", env)
    assert created.returncode == 0, created.stderr
    installed = run(env / "bin" / "pip", "install", "-q", "--no-index", "--find-links", wheels,
                    "--find-links", house, "moonship-core", "moonship-valr")
    assert installed.returncode == 0, installed.stderr
    yield env / "bin"


def moonship(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(bin_dir / "moonship", *args, cwd=cwd, env=clean_env(bin_dir))


def clean_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_for(bin_dir: Path, cwd: Path, seconds: float, *args: str) -> tuple[int, str]:
    """`moonship run ARGS` for `seconds`, then SIGTERM: (exit code, output)."""
    process = subprocess.Popen([str(bin_dir / "moonship"), "run", *args], cwd=cwd, env=clean_env(bin_dir),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    return process.returncode, output


def test_the_wheels_are_all_the_venv_has(venv: Path) -> None:
    python = venv / "python"
    found = run(python, "-c", "import moonship_core, sys; print(moonship_core.__file__); print(sys.path)")
    assert str(venv.parent) in found.stdout.splitlines()[0] and str(ROOT / "src") not in found.stdout
    listed = moonship(venv, venv.parent, "plugins", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "log_market_info, spread_quoter" in listed.stdout and "valr" in listed.stdout


def test_the_core_wheel_is_platform_specific_with_the_compiled_book(venv: Path) -> None:
    """The core's wheel carries the book's compiled loops (moonship_core._book), so it is built for this
    interpreter and platform; the plugins' wheels stay pure Python."""
    wheels = {path.name.split("-")[0]: path.name for path in (venv.parent.parent / "wheels").glob("*.whl")}
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert wheels["moonship_core"].endswith(f"-{python}-{python}-{platform}.whl"), wheels
    assert wheels["moonship_valr"].endswith("-py3-none-any.whl"), wheels
    if shutil.which("cc") or shutil.which("gcc"):
        found = run(venv / "python", "-c", "from moonship_core import book; print(book.COMPILED)")
        assert found.stdout == "True\n", found.stderr


def test_init_check_run_paper_over_sim(venv: Path, tmp_path: Path) -> None:
    bare = moonship(venv, tmp_path)
    assert bare.returncode == 2 and "run `moonship init`" in bare.stderr
    assert moonship(venv, tmp_path, "init").returncode == 0
    check = moonship(venv, tmp_path, "config", "check")
    assert (check.returncode, check.stdout) == (0, "OK: 1 markets, 2 strategies\n"), check.stderr
    code, output = run_for(venv, tmp_path, 6)
    assert code == 0, output
    assert "moonship.strategy.quoter: fill " in output  # it trades, and says so
    assert "summary at stop:" in output and "Traceback" not in output


def test_init_valr_without_a_network_says_so_in_one_line_and_retries(venv: Path, tmp_path: Path) -> None:
    assert moonship(venv, tmp_path, "init", "--exchange", "valr").returncode == 0
    config = tmp_path / "config.yml"
    # no network: VALR at a local port nothing listens on (the same on a machine that could reach VALR)
    local = "  valr:\n    rest_url: http://127.0.0.1:9\n    ws_url: ws://127.0.0.1:9\n"
    config.write_text(config.read_text() + local)
    assert moonship(venv, tmp_path, "config", "check").returncode == 0
    code, output = run_for(venv, tmp_path, 5)
    assert code == 0, output
    waiting = [line for line in output.splitlines() if "waiting for market btc: NetworkError" in line]
    assert len(waiting) == 2, output  # one line per strategy, however many retries
    assert all(line.endswith("(retrying)") for line in waiting)
    assert "Traceback" not in output


def test_new_algo_output_installs_and_runs(venv: Path, tmp_path: Path) -> None:
    assert moonship(venv, tmp_path, "new-algo", "dipper").returncode == 0
    project = tmp_path / "dipper"
    house = venv.parent.parent / "house"
    tools = run(venv / "pip", "install", "-q", "--no-index", "--find-links", house, *BUILD_TOOLS)
    assert tools.returncode == 0, tools.stderr
    installed = run(venv / "pip", "install", "-q", "--no-index", "--no-build-isolation", project)
    assert installed.returncode == 0, installed.stderr
    check = moonship(venv, project, "config", "check", "-c", "config.yml")
    assert check.returncode == 0, check.stderr
    code, output = run_for(venv, project, 3, "-c", "config.yml")
    assert code == 0, output
    assert "moonship.strategy.dipper: started (dipper on btc)" in output


def test_config_mistakes_are_listed_at_once(venv: Path, tmp_path: Path) -> None:
    assert moonship(venv, tmp_path, "init").returncode == 0
    config = tmp_path / "config.yml"
    text = config.read_text()
    for before, after in [
        ("trade_quantity: 0.001", "trade_quantity: lots"), ("spread_bps: 2", "sprad_bps: 2"),
        ("fee_rate: 0.001", "fee_rat: 0.001"), ("# max_drawdown: 100", "max_drawdown: -100"),
        ("interval: 10", "interval: 10\n      x: 1"),
    ]:
        text = text.replace(before, after)
    config.write_text(text)
    check = moonship(venv, tmp_path, "config", "check")
    assert check.returncode == 2
    for line in [
        "moonship.strategies.quoter.trade_quantity: input should be a valid decimal",
        "moonship.strategies.quoter.sprad_bps: unknown property; did you mean spread_bps?",
        "moonship.strategies.quoter.max_drawdown: input should be greater than 0",
        "moonship.strategies.info.x: unknown property",
        "moonship.markets.btc.fee_rat: unknown property; did you mean fee_rate?",
    ]:
        assert line in check.stderr, check.stderr
    config.write_text(text.replace("real_client: sim", "real_client: binance"))
    check = moonship(venv, tmp_path, "run")
    assert check.returncode == 2
    assert "it needs the moonship-binance plugin (pip install moonship-binance)" in check.stderr
    broken = moonship(venv, tmp_path, "config", "check", "-c", "nope.yml")
    assert broken.returncode == 2 and "config file not found: nope.yml" in broken.stderr
    (tmp_path / "bad.yml").write_text("moonship:\n  markets: [\n")
    bad = moonship(venv, tmp_path, "config", "check", "-c", "bad.yml")
    assert bad.returncode == 2 and "config file bad.yml is not valid YAML" in bad.stderr
