"""The engine's command handler against hostile and careless commands (issue 15): nothing a command contains
is imported, whatever a command raises becomes an error reply, and a failed add leaves nothing behind."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

from moonship_core import (
    MAX_DEPTH,
    ConfigError,
    ControlError,
    ControlPlane,
    MarketClient,
    StrategyMarket,
    TradingAlgo,
    hookimpl,
    printable,
)
from moonship_core import (
    STRATEGY_NAME_RULE as RULE,
)
from moonship_core.plugins import Plugins
from moonship_core.testing import ScriptedClient, build_engine
from moonship_core.trading.engine import TradingEngine


class Quiet(TradingAlgo):
    async def on_order_book(self, market: StrategyMarket) -> None:
        pass


class Exits(Quiet):
    """Code that calls sys.exit, as a module's import side effect or a careless algo may."""

    async def on_start(self) -> None:
        raise SystemExit(2)


class Interrupts(Quiet):
    async def on_start(self) -> None:
        raise KeyboardInterrupt


class FailsToStart(Quiet):
    async def on_start(self) -> None:
        raise RuntimeError("no start today")


class SizedSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    size: Decimal = Decimal("1")
    ratio: float = 0.5
    count: int = 1


class Sized(Quiet):
    settings_model = SizedSettings


class KeyedSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    api_key: str = ""
    passphrase: SecretStr = SecretStr("")
    size: Decimal = Decimal("1")


class Keyed(Quiet):
    settings_model = KeyedSettings
    settings: KeyedSettings


class HostilePlugin:
    @hookimpl
    def moonship_market_clients(self) -> dict[str, type[MarketClient]]:
        return {"scripted": ScriptedClient}

    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {
            "quiet": Quiet, "exits": Exits, "interrupts": Interrupts, "fails": FailsToStart, "sized": Sized,
            "keyed": Keyed,
        }


#: the same class as "quiet", but named by its dotted path (as the operator's config file may)
DOTTED_QUIET = f"{__name__}.Quiet"


def make_engine(strategies: dict[str, Any]) -> tuple[TradingEngine, ControlPlane]:
    moonship = {
        "engine": {"name": "main"},
        "markets": {"btc": {"client": "scripted", "symbol": "BTCUSDT"}},
        "strategies": strategies,
    }
    engine = build_engine(moonship, HostilePlugin())
    return engine, engine.context.control


def run(test: Callable[[TradingEngine, ControlPlane], Awaitable[None]], **strategies: Any) -> None:
    async def main() -> None:
        engine, control = make_engine(strategies)
        await engine.start()
        try:
            await test(engine, control)
        finally:
            await engine.stop()

    asyncio.run(main())


async def refused(call: Awaitable[Any], status: int) -> str:
    with pytest.raises(ControlError) as err:
        await call
    assert err.value.status == status, str(err.value)
    return str(err.value)


def test_plugins_resolve_refuses_dotted_paths_when_asked() -> None:
    plugins = Plugins.load(entry_points=False)
    plugins.register(HostilePlugin(), "hostile")
    assert plugins.resolve("algos", DOTTED_QUIET) is Quiet  # the config file's feature stays
    assert plugins.resolve("algos", "quiet", dotted=False) is Quiet
    assert plugins.resolve("market_clients", "moonship.client.paper.PaperTradingClient", dotted=False)
    assert "this" not in sys.modules
    for name in ("this.x", "subprocess.Popen", "builtins.type", DOTTED_QUIET):
        with pytest.raises(ConfigError, match="only registered names are accepted here"):
            plugins.resolve("algos", name, dotted=False)
    assert "this" not in sys.modules  # not even imported to look


@pytest.mark.parametrize(
    "algo",
    ["this.x", "subprocess.Popen", "builtins.type", "os.system", "venv.__main__.x",
     "moonship_binance.client.BinanceClient", DOTTED_QUIET],
)
def test_a_command_never_imports_a_dotted_algo(algo: str) -> None:
    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        message = await refused(control.add("main", "s1", {"algo": algo, "markets": ["btc"]}), 400)
        assert message.startswith(f"moonship.strategies.s1.algo: unknown algo {algo!r}: only registered")
        names = "exits, fails, interrupts, keyed, log_market_info, quiet, scripted, scripted_any_status"
        names += ", sized, spread_quoter"
        assert f"available: {names}" in message
        # nor through an update that switches the algo
        await control.add("main", "s2", {"algo": "quiet", "markets": ["btc"]})
        await refused(control.update("main", "s2", {"algo": algo}), 400)
        assert engine.strategies["s2"].algo_class is Quiet
        assert "s1" not in engine.strategies
        assert [s["name"] for s in await control.strategies()] == ["s2"]

    assert "this" not in sys.modules
    run(test)
    assert "this" not in sys.modules and "venv.__main__" not in sys.modules


def test_a_dotted_algo_from_the_config_file_still_works_and_updates() -> None:
    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        assert engine.strategies["cfg"].active and engine.strategies["cfg"].algo_class is Quiet
        info = await control.update("main", "cfg", {"markets": "btc"})  # the same algo: no new import
        assert info["active"] and info["config"]["algo"] == DOTTED_QUIET

    run(test, cfg={"algo": DOTTED_QUIET, "markets": ["btc"], "auto_start": True})


@pytest.mark.parametrize(("algo", "error"), [("exits", "SystemExit"), ("interrupts", "KeyboardInterrupt")])
def test_system_exit_and_keyboard_interrupt_become_error_replies(algo: str, error: str) -> None:
    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        config = {"algo": algo, "markets": ["btc"], "auto_start": True}
        # the algo's own SystemExit or KeyboardInterrupt is its failure to start, never the engine's end
        assert (await refused(control.add("main", "s1", config), 500)).startswith(
            f"strategy s1 failed to start: {error}("
        )
        assert "s1" not in engine.strategies  # the add was undone
        # the engine goes on: a start of a stopped strategy that raises it, then ordinary commands
        await control.add("main", "s1", {**config, "auto_start": False})
        message = await refused(control.start("main", "s1"), 500)
        assert message.startswith(f"strategy s1 failed to start: {error}(")
        await control.remove("main", "s1")
        info = await control.add("main", "ok", {"algo": "quiet", "markets": ["btc"], "auto_start": True})
        assert info["active"] is True
        assert [s["name"] for s in await control.strategies()] == ["ok"]

    run(test)


def test_a_failed_auto_start_add_leaves_no_strategy() -> None:
    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        config = {"algo": "fails", "markets": ["btc"], "auto_start": True}
        message = await refused(control.add("main", "s1", config), 500)
        assert message == "strategy s1 failed to start: no start today"
        assert "s1" not in engine.strategies
        assert await control.strategies() == []  # nor in the shared cache
        await refused(control.start("main", "s1"), 404)
        # not "already exists": the name is free for a corrected config
        info = await control.add("main", "s1", {**config, "algo": "quiet"})
        assert info["active"] is True

    run(test)


# ---------------------------------------------------------------------- item 2: bounded state
def logger_count() -> int:
    return len(logging.Logger.manager.loggerDict)


def test_unknown_names_leave_no_per_name_state() -> None:
    """Thousands of commands for names that do not exist: the per-name state (locks, loggers) does not grow.
    The count of entries, not a timing or RSS."""

    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        assert engine.commands._locks == {}
        loggers = logger_count()
        for i in range(3000):
            action = ("stop", "start", "remove", "update")[i % 4]
            config = {"size": "2"} if action == "update" else None
            await refused(control.send("main", action, f"unknown-{i}", config), 404)
        assert engine.commands._locks == {}
        assert logger_count() == loggers
        # concurrent commands on one name share one lock, dropped when the last one is done
        await asyncio.gather(*(refused(control.stop("main", "same"), 404) for _ in range(50)))
        assert engine.commands._locks == {}

    run(test)


def test_removed_and_failed_strategies_leave_no_logger_behind() -> None:
    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        loggers = logger_count()
        for i in range(200):
            name = f"s.{i}.x"  # dotted: the logging module would keep a placeholder per prefix too
            await control.add("main", name, {"algo": "quiet", "markets": ["btc"], "auto_start": True})
            await control.update("main", name, {"auto_start": False})
            await control.remove("main", name)
            config = {"algo": "fails", "markets": ["btc"], "auto_start": True}
            await refused(control.add("main", f"f.{i}", config), 500)
        assert logger_count() == loggers
        assert engine.commands._locks == {} and engine.strategies.keys() == {"keep"}
        # a logger the operator's logging config set up survives the strategy
        configured = logging.getLogger("moonship.strategy.conf")
        configured.setLevel(logging.DEBUG)
        try:
            await control.add("main", "conf", {"algo": "quiet", "markets": ["btc"]})
            await control.remove("main", "conf")
            assert logging.Logger.manager.loggerDict["moonship.strategy.conf"] is configured
        finally:
            configured.setLevel(logging.NOTSET)

    run(test, keep={"algo": "quiet", "markets": ["btc"]})


BAD_NAMES = ["", "a b", "a\nb", "abc\n", "a\x00b", "\x1b[31mred", "a/b", "caf\u00e9", "x" * 65, "x" * 100_000]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_strategy_names_are_refused(name: str) -> None:
    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        config = {"algo": "quiet", "markets": ["btc"]}
        for action in ("add", "stop", "remove"):
            message = await refused(control.send("main", action, name, config), 400)
            assert message in ("Missing or bad strategy field", f"Bad strategy name: it must be {RULE}")
        assert engine.strategies == {} and engine.commands._locks == {}
        await control.add("main", "A-z_0.9" + "x" * 57, config)  # 64 of the allowed characters

    run(test)


def test_bad_strategy_names_in_the_config_file_name_the_property() -> None:
    with pytest.raises(ConfigError) as err:
        quiet = {"algo": "quiet", "markets": ["btc"]}
        make_engine({"ok": quiet, "a\nb": quiet, "y" * 65: quiet})
    lines = str(err.value).splitlines()
    assert lines == [
        f"moonship.strategies.a\\x0ab: bad strategy name: it must be {RULE}",  # escaped: one line
        f"moonship.strategies.{'y' * 65}: bad strategy name: it must be {RULE}",
    ]


def test_deeply_nested_configs_are_refused() -> None:
    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        deep: Any = "x"
        for _ in range(100):  # past the limit, within what the bus' encoder takes (254)
            deep = {"a": deep}
        sized = {"algo": "sized", "markets": ["btc"]}
        for config in ({**sized, "extra": deep}, {**sized, "markets": [deep]}):
            message = await refused(control.add("main", "s1", config), 400)
            assert message == f"Bad config field: nested more than {MAX_DEPTH} levels deep"
            # a bus client other than the control plane (which checks too) gets the same from the engine
            reply = await engine.commands.handle({"command": "add", "strategy": "s1", "config": config})
            assert reply["status"] == 400 and reply["error"] == message
        for _ in range(900):  # the control plane refuses it before the bus' encoder fails
            deep = {"a": deep}
        for config in ({**sized, "extra": deep}, {**sized, "markets": [deep]}):
            message = await refused(control.add("main", "s1", config), 400)
            assert message == f"Bad config field: nested more than {MAX_DEPTH} levels deep"
        await control.add("main", "s1", {"algo": "sized", "markets": ["btc"]})
        await refused(control.update("main", "s1", {"extra": [[[[deep]]]]}), 400)
        assert engine.strategies["s1"].config.extra == {}

    run(test)


@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({"size": "1e999999999"}, "size: number out of range (magnitude 1e-100 to 1e100)"),
        ({"size": "-1E+100"}, "size: number out of range"),
        ({"size": "1e-101"}, "size: number out of range"),
        ({"ratio": "inf"}, "ratio: must be a finite number"),
        ({"ratio": "nan"}, "ratio: must be a finite number"),
        ({"ratio": 1e300}, "ratio: number out of range"),
    ],
)
def test_absurd_numbers_in_algo_settings_are_refused(properties: dict[str, Any], problem: str) -> None:
    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        config = {"algo": "sized", "markets": ["btc"], "auto_start": True, **properties}
        message = await refused(control.add("main", "s1", config), 400)
        assert message.startswith(f"moonship.strategies.s1.{problem}")
        ordinary = {"algo": "sized", "markets": ["btc"], "size": "9.99e99", "ratio": 1e-100}
        await control.add("main", "s1", ordinary)
        await refused(control.update("main", "s1", properties), 400)
        assert (await control.start("main", "s1"))["active"] is True  # the engine goes on

    run(test)
    with pytest.raises(ConfigError, match=re.escape(f"moonship.strategies.cfg.{problem}")):  # the file's too
        make_engine({"cfg": {"algo": "sized", "markets": ["btc"], **properties}})


@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({"count": 2**63}, "count: integer out of range (64-bit)"),
        ({"other": {"deep": ["1", Decimal("1e999999999")]}}, "other.deep[1]: number out of range"),
        ({"other": Decimal("Infinity")}, "other: must be a finite number"),  # YAML's .inf
    ],
)
def test_absurd_numbers_only_a_config_file_can_hold(properties: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"moonship.strategies.cfg.{problem}")):
        make_engine({"cfg": {"algo": "sized", "markets": ["btc"], **properties}})


def test_zero_and_ordinary_numbers_are_fine() -> None:
    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        config = {"algo": "sized", "markets": ["btc"], "size": "0E-1000", "ratio": 0.0, "count": -(2**63)}
        assert (await control.add("main", "s1", config))["name"] == "s1"

    run(test)


def test_printable_escapes_what_could_forge_or_hide_log_lines() -> None:
    assert printable("plain text: ok-1.2") == "plain text: ok-1.2"
    assert printable("a\nb\rc\x00d\x1b[31m\x7f\x85\x9b") == "a\\x0ab\\x0dc\\x00d\\x1b[31m\\x7f\\x85\\x9b"
    assert printable("x\u2028y\u202ez") == "x\\u2028y\\u202ez"
    assert printable("é€") == "é€"
    assert printable("y" * 300) == "y" * 200 + "..."


# ---------------------------------------------------------------------- item 7: secrets stay secret
def test_values_from_environment_variables_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDEN_KEY", "key-from-env")
    monkeypatch.setenv("HARDEN_NESTED", "nested-from-env")
    monkeypatch.setenv("HARDEN_SIZE", "2.5")
    strategies = {"s1": {
        "algo": "keyed", "markets": ["btc"], "api_key": "$HARDEN_KEY", "size": "$HARDEN_SIZE",
        "passphrase": "typed-as-secret", "creds": {"token": "$HARDEN_NESTED", "plain": "p"},
        "tokens": ["$HARDEN_NESTED", "public"], "literal": "$$HARDEN_KEY",
    }}

    async def test(engine: TradingEngine, control: ControlPlane) -> None:
        strategy = engine.strategies["s1"]
        settings = strategy.settings
        assert isinstance(settings, KeyedSettings)
        assert settings.api_key == "key-from-env" and settings.size == Decimal("2.5")  # the algo sees them
        expected = {
            "algo": "keyed", "auto_start": False, "markets": ["btc"], "api_key": "***", "size": "***",
            "passphrase": "***", "creds": {"token": "***", "plain": "p"}, "tokens": ["***", "public"],
            "literal": "$HARDEN_KEY",
        }
        assert strategy.info()["config"] == expected
        await engine.publisher.flush()
        for info in (await control.strategy("main", "s1"), (await control.strategies())[0]):  # the cache
            assert info["config"] == expected
            assert "from-env" not in str(info) and "typed-as-secret" not in str(info)
        # an update keeps them masked, unless it replaces them
        info = await control.update("main", "s1", {"auto_start": False})
        assert info["config"] == expected
        info = await control.update("main", "s1", {"api_key": "new-public", "creds": {"token": "t"}})
        assert info["config"]["api_key"] == "new-public" and info["config"]["creds"] == {"token": "t"}
        assert info["config"]["size"] == "***" and info["config"]["tokens"] == ["***", "public"]
        assert info["config"]["passphrase"] == "***"
        updated = engine.strategies["s1"].settings
        assert isinstance(updated, KeyedSettings) and updated.size == Decimal("2.5")

    run(test, **strategies)
