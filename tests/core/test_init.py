"""`moonship init`: a commented starter config from the installed plugins' templates; bare `moonship`
without a config; -v/-q."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from moonship_core import cli
from moonship_core.config import load_config
from moonship_core.plugins import Plugins
from moonship_core.scaffold import starter_config


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_writes_a_sim_paper_config_that_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["init"]) == 0
    assert capsys.readouterr().out == (
        "wrote config.yml: paper trading over the offline sim market. Next: moonship run\n"
    )
    text = Path("config.yml").read_text()
    assert text.startswith("# Moonship starter config, written by `moonship init`")
    config = load_config("config.yml")
    market = config.markets["btc"]
    assert (market.client, market.extra["real_client"]) == ("paper", "sim")
    assert {n: s.algo for n, s in config.strategies.items()} == {
        "quoter": "spread_quoter", "info": "log_market_info"
    }
    assert all(s.auto_start for s in config.strategies.values())
    assert cli.main(["config", "check"]) == 0


def test_init_never_overwrites_without_force(capsys: pytest.CaptureFixture[str]) -> None:
    Path("config.yml").write_text("mine\n")
    assert cli.main(["init"]) == 1
    assert "config.yml exists: not overwritten (--force overwrites it)" in capsys.readouterr().err
    assert Path("config.yml").read_text() == "mine\n"
    assert cli.main(["init", "--force"]) == 0
    assert Path("config.yml").read_text() != "mine\n"


@pytest.mark.parametrize(("exchange", "symbol"), [("valr", "BTCZAR"), ("binance", "BTCUSDT")])
def test_init_exchange_paper_trades_live_data_with_keys_commented_out(exchange: str, symbol: str) -> None:
    assert cli.main(["init", "--exchange", exchange, "-c", "sub/live.yml"]) == 0
    text = Path("sub/live.yml").read_text()
    upper = exchange.upper()
    assert f"  # {exchange}:\n  #   api_key: ${upper}_API_KEY" in text
    assert f"  #   api_secret: ${upper}_API_SECRET" in text
    config = load_config("sub/live.yml")  # no environment variable needed
    market = config.markets["btc"]
    assert (market.client, market.extra["real_client"], market.symbol) == ("paper", exchange, symbol)
    assert exchange not in config.sections
    assert cli.main(["config", "check", "-c", "sub/live.yml"]) == 0
    # uncommenting the section gives a valid one (indentation right)
    live = text.replace(f"  # {exchange}:\n", f"  {exchange}:\n").replace("  #   api_", "    api_")
    Path("sub/live.yml").write_text(live)
    assert set(load_config_with_env("sub/live.yml", upper).section(exchange)) >= {"api_key", "api_secret"}


def load_config_with_env(path: str, upper: str) -> object:
    mp = pytest.MonkeyPatch()
    mp.setenv(f"{upper}_API_KEY", "k")
    mp.setenv(f"{upper}_API_SECRET", "s")
    try:
        return load_config(path)
    finally:
        mp.undo()


def test_every_installed_venue_contributes_a_template_that_parses() -> None:
    plugins = Plugins.load()
    venues = set(plugins.names("market_clients")) - {"paper"}
    assert venues <= set(plugins.registries["config_templates"])
    for venue in venues:
        assert "real_client: " + venue in starter_config(plugins, None if venue == "sim" else venue)


def test_init_unknown_exchange(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["init", "--exchange", "kraken"]) == 2
    assert "--exchange kraken: no installed plugin has a starter config for it; installed: " in (
        capsys.readouterr().err
    )
    core_only = Plugins.load(entry_points=False)  # what a bare `pip install moonship-core` has
    monkeypatch.setattr(Plugins, "load", classmethod(lambda cls, entry_points=True: core_only))
    assert cli.main(["init", "--exchange", "valr"]) == 2
    err = capsys.readouterr().err
    assert "--exchange valr: it needs the moonship-valr plugin (pip install moonship-valr); installed: sim" \
        in err
    assert not Path("config.yml").exists()


def test_bare_moonship_without_a_config_says_to_run_init(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: moonship ")
    assert "no config.yml here: run `moonship init` to write a starter config" in err
    assert cli.main(["run"]) == 2
    assert "config file not found: config.yml (run `moonship init` to write" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "level"), [([], logging.INFO), (["-v"], logging.DEBUG),
                                               (["-q"], logging.WARNING), (["--verbose"], logging.DEBUG)])
def test_verbose_and_quiet_set_the_log_level(
    flags: list[str], level: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    from types import ModuleType

    seen: list[int] = []
    module = ModuleType("moonship_core.launcher")
    module.run = lambda config, plugins, services: seen.append(  # type: ignore[attr-defined]
        logging.getLogger("moonship").getEffectiveLevel()
    ) or 0
    monkeypatch.setitem(sys.modules, "moonship_core.launcher", module)
    assert cli.main(["init"]) == 0
    try:
        assert cli.main(["run", *flags]) == 0
        assert cli.main([*flags]) == 0  # the bare form too
    finally:
        logging.getLogger("moonship").setLevel(logging.INFO)
    assert seen == [level, level]
