"""The `moonship` command: in-process for the wiring, as a real subprocess for exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from moonship_core import TradingAlgo, cli
from moonship_core.config import MoonshipConfig
from moonship_core.hookspecs import hookimpl
from moonship_core.plugins import PluginFailure, Plugins
from moonship_core.sim.synthetic import SimClient

CONFIG = """\
moonship:
  engine:
    name: e1
  markets:
    btc:
      client: fake
      symbol: BTCUSDT
  strategies:
    s1:
      algo: fake_algo
      markets: btc
"""


class FakeService:
    settings_model = None


class FakeClient(SimClient):  # a real client class: the check builds each market's client
    pass


class FakeAlgo(TradingAlgo):
    pass


def fake_plugins() -> Plugins:
    plugins = Plugins()
    plugins.register(
        SimpleNamespace(
            moonship_market_clients=hookimpl(lambda: {"fake": FakeClient}),
            moonship_algos=hookimpl(lambda: {"fake_algo": FakeAlgo}),
            moonship_services=hookimpl(
                lambda: {"engine": FakeService, "api": FakeService, "monitor": FakeService}
            ),
        ),
        "fakes",
        "moonship-fakes",
        "9.9",
    )
    return plugins


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[MoonshipConfig, Plugins, list[str]]] = []

    def run(self, config: MoonshipConfig, plugins: Plugins, services: list[str]) -> int:
        self.calls.append((config, plugins, services))
        return 7


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Recorder:
    """In-process runs: a fake app.run, fake plugins, logging left alone, a config.yml in the cwd."""
    recorder = Recorder()
    module = ModuleType("moonship_core.launcher")
    module.run = recorder.run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "moonship_core.launcher", module)
    plugins = fake_plugins()
    monkeypatch.setattr(Plugins, "load", classmethod(lambda cls, entry_points=True: plugins))
    monkeypatch.setattr(cli, "configure_logging", lambda config: None)
    (tmp_path / "config.yml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return recorder


@pytest.mark.parametrize(
    ("flags", "services"),
    [
        ([], ["engine"]),
        (["-e"], ["engine"]),
        (["-a"], ["api"]),
        (["-m"], ["monitor"]),
        (["-a", "-m"], ["api", "monitor"]),
        (["-m", "-a", "-e"], ["engine", "api", "monitor"]),
        (["-e", "-a"], ["engine", "api"]),
    ],
)
@pytest.mark.parametrize("command", [["run"], []])
def test_service_selection(app: Recorder, command: list[str], flags: list[str], services: list[str]) -> None:
    assert cli.main([*command, *flags, "-c", "config.yml"]) == 7
    [(config, plugins, selected)] = app.calls
    assert config.engine.name == "e1"
    assert "fake" in plugins.registries["market_clients"]
    assert selected == services


def test_config_defaults_to_config_yml(app: Recorder) -> None:
    assert cli.main([]) == 7
    assert app.calls[0][0].markets["btc"].symbol == "BTCUSDT"


def test_missing_service_plugin(
    app: Recorder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Plugins, "load", classmethod(lambda cls, entry_points=True: Plugins()))
    assert cli.main(["-a", "-m"]) == 2
    assert capsys.readouterr().err == (
        "moonship: the 'api' service needs the moonship-api plugin (pip install moonship-api)\n"
    )
    assert app.calls == []


def test_seed_algo_without_its_plugin_says_how_to_install_it(
    app: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Plugins, "load", classmethod(lambda cls, entry_points=True: Plugins()))
    (tmp_path / "config.yml").write_text(
        CONFIG.replace("algo: fake_algo", "algo: moonship.algo.test.LogMarketInfo")
    )
    assert cli.main(["config", "check"]) == 2
    assert (
        "moonship.strategies.s1.algo: unknown algo 'moonship.algo.test.LogMarketInfo': it needs the "
        "moonship-core plugin (pip install moonship-core); available: none"
    ) in capsys.readouterr().err
    assert app.calls == []


def test_run_checks_names_only_with_the_engine(app: Recorder, tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(CONFIG.replace("client: fake", "client: kraken"))
    assert cli.main(["-a"]) == 7
    assert cli.main(["-e", "-a"]) == 2
    assert len(app.calls) == 1


def test_run_rejects_unclaimed_sections(
    app: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yml").write_text(CONFIG + "  kraken:\n    api_key: k\n")
    assert cli.main(["-a"]) == 2
    assert "moonship.kraken: unknown property (no installed plugin uses it)" in capsys.readouterr().err
    assert app.calls == []


def test_config_check(app: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "check"]) == 0
    assert capsys.readouterr().out == "OK: 1 markets, 1 strategies\n"
    assert app.calls == []


def test_plugins_list(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    plugins = fake_plugins()
    plugins.failures.append(PluginFailure("broken", "moonship-broken", "ImportError: needs libfoo"))
    monkeypatch.setattr(Plugins, "load", classmethod(lambda cls, entry_points=True: plugins))
    assert cli.main(["plugins", "list"]) == 1  # a plugin failed to load
    assert capsys.readouterr().out.splitlines() == [
        "PLUGIN  DISTRIBUTION    VERSION  PROVIDES",
        "fakes   moonship-fakes  9.9      "
        "market_clients: fake; algos: fake_algo; services: api, engine, monitor",
        "",
        "Failed plugins:",
        "  broken (moonship-broken): ImportError: needs libfoo",
    ]


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["run", "--nope"], 2), (["config"], 2)])
def test_argparse_exits_become_return_codes(
    argv: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == code
    output = capsys.readouterr()
    assert "usage: moonship" in output.out + output.err


# --- the real command, as a subprocess ----------------------------------------------------------------------

FAKES = """\
from moonship_core import TradingAlgo
from moonship_core.sim.synthetic import SimClient


class Client(SimClient):
    pass


class Algo(TradingAlgo):
    pass
"""


def moonship(tmp_path: Path, *args: str, config: str | None = None, module: str = "moonship") -> Any:
    """Run `python -m moonship ARGS` in `tmp_path` (with `config` as config.yml, and a `fakes` module)."""
    if config is not None:
        (tmp_path / "config.yml").write_text(config)
    (tmp_path / "fakes.py").write_text(FAKES)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MOONSHIP_TEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_config_error(result: Any, line: str) -> None:
    """Exit code 2, the config error banner and a line starting with `line` on stderr, no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("moonship: config error:\n")
    assert any(text.startswith(line) for text in result.stderr.splitlines()), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow
def test_missing_symbol(tmp_path: Path) -> None:
    result = moonship(tmp_path, "-c", "config.yml", config=CONFIG.replace("      symbol: BTCUSDT\n", ""))
    assert_config_error(result, "moonship.markets.btc.symbol: field required")


@pytest.mark.slow
def test_unknown_client(tmp_path: Path) -> None:
    result = moonship(tmp_path, config=CONFIG.replace("algo: fake_algo", "algo: fakes.Algo"))
    assert_config_error(result, "moonship.markets.btc.client: unknown market client 'fake'; available: ")
    assert "paper, sim" in result.stderr or "paper, sim," in result.stderr


@pytest.mark.slow
def test_unset_environment_variable(tmp_path: Path) -> None:
    result = moonship(tmp_path, "-a", config=CONFIG + "  api:\n    port: $MOONSHIP_TEST_PORT\n")
    assert_config_error(result, "moonship.api.port: environment variable MOONSHIP_TEST_PORT is not set")


@pytest.mark.slow
def test_missing_config_file(tmp_path: Path) -> None:
    assert_config_error(moonship(tmp_path, "run"), "config file not found: config.yml")
    bare = moonship(tmp_path)  # no command and no config.yml: the usage and what to do first
    assert bare.returncode == 2 and bare.stderr.startswith("usage: moonship")
    assert "run `moonship init` to write a starter config" in bare.stderr
    assert_config_error(
        moonship(tmp_path, "config", "check", "-c", "other.yml"), "config file not found: other.yml"
    )


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--version", "-V"])
@pytest.mark.parametrize("module", ["moonship", "moonship_core"])
def test_version(tmp_path: Path, flag: str, module: str) -> None:
    result = moonship(tmp_path, flag, module=module)
    assert (result.returncode, result.stdout) == (0, f"moonship-core {metadata.version('moonship-core')}\n")


@pytest.mark.slow
def test_plugins_list_command(tmp_path: Path) -> None:
    result = moonship(tmp_path, "plugins", "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:4] == ["PLUGIN", "DISTRIBUTION", "VERSION", "PROVIDES"]


@pytest.mark.slow
def test_config_check_command(tmp_path: Path) -> None:
    config = CONFIG.replace("client: fake", "client: fakes.Client").replace(
        "algo: fake_algo", "algo: fakes.Algo"
    )
    result = moonship(tmp_path, "config", "check", "-c", "config.yml", config=config)
    assert (result.returncode, result.stdout) == (0, "OK: 1 markets, 1 strategies\n"), result.stderr


@pytest.mark.slow
def test_config_check_reports_every_problem(tmp_path: Path) -> None:
    config = CONFIG.replace("algo: fake_algo", "algo: fakes.Nope") + "  nosuchplugin: {}\n"
    result = moonship(tmp_path, "config", "check", config=config)
    assert_config_error(result, "moonship.nosuchplugin: unknown property (no installed plugin uses it)")
    assert_config_error(
        result, "moonship.strategies.s1.algo: cannot import algo 'fakes.Nope': AttributeError"
    )
    assert_config_error(result, "moonship.markets.btc.client: unknown market client 'fake'")


def test_orders_and_fills_read_the_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    from datetime import UTC, datetime
    from decimal import Decimal as D

    from moonship_core import Fill, Order, OrderStatus, OrderType, Side
    from moonship_core.contracts.stores import FillRecord
    from moonship_core.stores.sqlite import SqliteJournal

    path = tmp_path / "data" / "e.sqlite"
    at = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)

    async def write() -> None:
        journal = SqliteJournal(path)
        await journal.open()
        for coid, status, minute in [("msa", OrderStatus.FILLED, 1), ("msb", OrderStatus.PENDING, 2)]:
            journal.record_order("quoter", "btc", Order(
                "1" + coid, coid, "BTCUSDT", Side.BUY, OrderType.LIMIT, status, quantity=D("0.01"),
                price=D("30000.5"), filled_quantity=D("0.01") if coid == "msa" else D(0),
                filled_quote_quantity=D("300.005") if coid == "msa" else D(0), created=at,
                updated=at.replace(minute=30 + minute),
            ))
        fill = Fill("t1", D("30000.5"), D("0.01"), D("0.00001"), "BTC", timestamp=at.replace(minute=31))
        journal.record_fill(FillRecord("quoter", "btc", "msa", Side.BUY, fill, "BTC", "USDT"))
        await journal.close()

    asyncio.run(write())
    config = tmp_path / "c.yml"
    config.write_text(f"moonship:\n  engine:\n    name: e\n  journal:\n    path: {path}\n")
    assert cli.main(["orders", "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "UPDATED", "STRATEGY", "MARKET", "SIDE", "TYPE", "STATUS", "QUANTITY", "PRICE", "FILLED", "AVG",
        "PRICE", "CLIENT", "ORDER", "ID",
    ]
    assert lines[1].split() == [
        "2026-05-01", "09:32:00", "quoter", "btc", "BUY", "LIMIT", "PENDING", "0.01", "30000.5", "0", "-",
        "msb",
    ]
    assert lines[2].split()[6:] == ["FILLED", "0.01", "30000.5", "0.01", "30000.5", "msa"]
    # aligned: each column starts at the same place on every line
    assert lines[0].index("STRATEGY") == lines[1].index("quoter") == lines[2].index("quoter")
    assert cli.main(["orders", "-c", str(config), "--open", "--json"]) == 0
    (only,) = capsys.readouterr().out.splitlines()
    assert '"client_order_id":"msb"' in only and '"status":"PENDING"' in only
    assert cli.main(["fills", "-c", str(config), "--since", "2026-05-01T09:31:00Z"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    expected = ["2026-05-01", "09:31:00", "quoter", "btc", "BUY", "30000.5", "0.01", "0.00001", "BTC", "msa"]
    assert row.split() == expected
    assert cli.main(["fills", "-c", str(config), "--since", "2026-05-01T10:00:00Z"]) == 0
    assert capsys.readouterr().out.split() == header.split()  # the heading alone
    config.write_text(f"moonship:\n  journal:\n    path: {tmp_path / 'none.sqlite'}\n")
    assert cli.main(["fills", "-c", str(config)]) == 1
    assert "no journal at" in capsys.readouterr().err
