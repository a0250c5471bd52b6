"""The engine's command handler against hostile and careless commands (issue 15): nothing a command contains
is imported, whatever a command raises becomes an error reply, and a failed add leaves nothing behind."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support.scripted import ScriptedClient

from moonship_core import (
    ConfigError,
    ControlError,
    ControlPlane,
    MarketClient,
    StrategyMarket,
    TradingAlgo,
    hookimpl,
)
from moonship_core.config import parse_config
from moonship_core.plugins import Plugins
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


class HostilePlugin:
    @hookimpl
    def moonship_market_clients(self) -> dict[str, type[MarketClient]]:
        return {"scripted": ScriptedClient}

    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"quiet": Quiet, "exits": Exits, "interrupts": Interrupts, "fails": FailsToStart}


#: the same class as "quiet", but named by its dotted path (as the operator's config file may)
DOTTED_QUIET = f"{__name__}.Quiet"


def make_engine(strategies: dict[str, Any]) -> tuple[TradingEngine, ControlPlane]:
    config = parse_config({"moonship": {
        "engine": {"name": "main"},
        "markets": {"btc": {"client": "scripted", "symbol": "BTCUSDT"}},
        "strategies": strategies,
    }})
    plugins = Plugins.load(entry_points=False)
    plugins.register(HostilePlugin(), "hostile")
    engine = TradingEngine.embedded(config, plugins, timeout=2)
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
        assert "available: exits, fails, interrupts, quiet" in message
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
        assert await refused(control.add("main", "s1", config), 500) == f"Internal error: {error}"
        assert "s1" not in engine.strategies  # the add was undone
        # the engine goes on: a start of a stopped strategy that raises it, then ordinary commands
        await control.add("main", "s1", {**config, "auto_start": False})
        assert await refused(control.start("main", "s1"), 500) == f"Internal error: {error}"
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
