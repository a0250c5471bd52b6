"""`moonship config check` runs every validation `moonship run` runs and lists every problem at once (exit
2); `run` refuses the same config before it starts anything; `plugins list` imports every reference."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from moonship_core import cli
from moonship_core.hookspecs import hookimpl
from moonship_core.plugins import Plugins

GOOD = """\
moonship:
  markets:
    btc:
      client: paper
      real_client: sim
      symbol: BTCUSDT
      balances: {BTC: 1, USDT: 100000}
      fee_rate: 0.001
  strategies:
    quoter:
      algo: spread_quoter
      auto_start: true
      markets: [btc]
      trade_quantity: 0.001
      max_drawdown: 100
    info:
      algo: log_market_info
      markets: btc
"""

#: each mistake of issue 19, and the line `config check` must print for it
MISTAKES = [
    ("trade_quantity: 0.001", "trade_quantity: lots",
     "moonship.strategies.quoter.trade_quantity: input should be a valid decimal"),
    ("auto_start: true", "auto_strat: true",
     "moonship.strategies.quoter.auto_strat: unknown property; did you mean auto_start?"),
    ("fee_rate: 0.001", "fee_rat: 0.001",
     "moonship.markets.btc.fee_rat: unknown property; did you mean fee_rate?"),
    ("max_drawdown: 100", "max_drawdown: -100",
     "moonship.strategies.quoter.max_drawdown: input should be greater than 0"),
    ("      markets: btc\n", "      markets: btc\n      intervall: 5\n",
     "moonship.strategies.info.intervall: unknown property; did you mean interval?"),
    ("real_client: sim", "real_client: binance",
     "moonship.markets.btc.real_client: unknown market client 'binance': it needs the moonship-binance "
     "plugin (pip install moonship-binance)"),
]


class Launcher:
    def __init__(self) -> None:
        self.runs = 0

    def run(self, *args: object) -> int:
        self.runs += 1
        return 0


@pytest.fixture
def launcher(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Launcher:
    """The core alone installed (no binance plugin), a launcher that records whether anything started."""
    recorder = Launcher()
    module = ModuleType("moonship_core.launcher")
    module.run = recorder.run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "moonship_core.launcher", module)
    core = Plugins.load(entry_points=False)
    monkeypatch.setattr(Plugins, "load", classmethod(lambda cls, entry_points=True: core))
    monkeypatch.setattr(cli, "configure_logging", lambda config: None)
    monkeypatch.chdir(tmp_path)
    return recorder


def test_a_good_config_checks_and_runs(launcher: Launcher, capsys: pytest.CaptureFixture[str]) -> None:
    Path("config.yml").write_text(GOOD)
    assert cli.main(["config", "check"]) == 0
    assert capsys.readouterr().out == "OK: 1 markets, 2 strategies\n"
    assert cli.main(["run"]) == 0 and launcher.runs == 1


@pytest.mark.parametrize(("before", "after", "line"), MISTAKES, ids=[m[2].split(":")[0] for m in MISTAKES])
def test_each_mistake_fails_check_and_run(
    launcher: Launcher, capsys: pytest.CaptureFixture[str], before: str, after: str, line: str
) -> None:
    assert before in GOOD
    Path("config.yml").write_text(GOOD.replace(before, after))
    assert cli.main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moonship: config error:\n") and line in err.splitlines()[1], err
    assert cli.main(["run"]) == 2
    assert line in capsys.readouterr().err
    assert launcher.runs == 0


def test_every_problem_at_once(launcher: Launcher, capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD
    for before, after, _ in MISTAKES:
        text = text.replace(before, after)
    Path("config.yml").write_text(text + "  redis:\n    ulr: redis://x\n  engin:\n    name: x\n")
    assert cli.main(["config", "check"]) == 2
    lines = capsys.readouterr().err.splitlines()[1:]
    # the market's real client is missing, so its own keys are not reached: every other problem is listed
    expected = [line for _, _, line in MISTAKES if "fee_rat" not in line]
    expected += ["moonship.redis.ulr: unknown property; did you mean url?",
                 "moonship.engin: unknown property; did you mean engine?"]
    for line in expected:
        assert any(found.startswith(line) for found in lines), (line, lines)
    assert cli.main(["run"]) == 2 and launcher.runs == 0


def test_service_sections_and_services(launcher: Launcher, capsys: pytest.CaptureFixture[str]) -> None:
    Path("config.yml").write_text(GOOD)
    assert cli.main(["config", "check", "-a"]) == 2
    assert "moonship.api: the 'api' service is not installed: it needs the moonship-api plugin " \
        "(pip install moonship-api)" in capsys.readouterr().err


def test_api_section_checked_with_the_api_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("moonship_api")
    monkeypatch.chdir(tmp_path)
    Path("config.yml").write_text(GOOD + "  api:\n    usr: me\n")
    assert cli.main(["config", "check", "-a"]) == 2
    err = capsys.readouterr().err
    assert "moonship.api.usr: unknown property; did you mean user?" in err


def test_yaml_error_names_the_file(launcher: Launcher, capsys: pytest.CaptureFixture[str]) -> None:
    Path("bad.yml").write_text("moonship:\n  markets: [\n")
    assert cli.main(["config", "check", "-c", "bad.yml"]) == 2
    assert "config file bad.yml is not valid YAML" in capsys.readouterr().err


def test_unknown_algo_of_a_known_distribution_says_what_to_install(
    launcher: Launcher, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("config.yml").write_text(GOOD.replace("algo: log_market_info", "algo: price_alert"))
    assert cli.main(["config", "check"]) == 2
    assert (
        "moonship.strategies.info.algo: unknown algo 'price_alert': it needs the moonship-example-algos "
        "plugin" in capsys.readouterr().err
    )


def test_plugins_list_imports_every_reference_and_marks_the_broken(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plugins = Plugins.load(entry_points=False)
    plugins.register(
        SimpleNamespace(moonship_algos=hookimpl(lambda: {"gone": "nowhere.at_all:Algo"})), "bad", "bad-dist"
    )
    monkeypatch.setattr(Plugins, "load", classmethod(lambda cls, entry_points=True: plugins))
    assert cli.main(["plugins", "list"]) == 1
    out = capsys.readouterr().out
    assert "algos: gone (BROKEN)" in out
    assert "algos gone: cannot import algo 'nowhere.at_all:Algo': ModuleNotFoundError" in out
    assert "spread_quoter (BROKEN)" not in out
