"""The reference algorithms the core ships (log_market_info, spread_quoter) and the example distribution's
own algo (price_alert), each run by a real engine over the offline simulator."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from moonship_core.config import parse_config
from moonship_core.errors import ConfigError
from moonship_core.plugins import Plugins
from moonship_core.testing import until
from moonship_core.trading.engine import TradingEngine


def config(strategies: dict[str, Any], **market: Any) -> Any:
    return parse_config(
        {
            "moonship": {
                "engine": {"name": "algos"},
                "markets": {
                    "btc": {
                        "client": "paper", "real_client": "sim", "symbol": "BTCUSDT", "seed": 5,
                        "events_per_second": 200, "balances": {"USDT": "100000", "BTC": "1"}, **market,
                    }
                },
                "strategies": strategies,
            }
        }
    )




def test_the_core_registers_its_algos_and_the_seed_name() -> None:
    plugins = Plugins.load(entry_points=False)
    assert {"log_market_info", "spread_quoter"} <= set(plugins.names("algos"))
    assert plugins.resolve("algos", "moonship.algo.test.LogMarketInfo").__name__ == "LogMarketInfo"


def test_log_market_info_logs_book_top_spread_and_last_trade_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        engine = TradingEngine.embedded(
            config({"info": {"algo": "log_market_info", "auto_start": True, "markets": "btc",
                             "interval": 0.2}})
        )
        await engine.start()
        try:
            await until(lambda: len(lines()) >= 3 and "last trade -" not in lines()[-1])
        finally:
            await engine.stop()

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "moonship.strategy.info"
                and r.getMessage().startswith("btc BTCUSDT")]

    with caplog.at_level(logging.INFO, "moonship"):
        asyncio.run(main())
    line = lines()[-1]
    assert " | bid " in line and " | ask " in line and " | spread " in line and " bps)" in line
    assert " | last trade BUY " in line or " | last trade SELL " in line
    records = [r for r in caplog.records if r.getMessage() in lines()]
    assert {r.levelno for r in records} == {logging.INFO}


def test_log_market_info_interval_defaults_to_10_and_refuses_unknown_keys() -> None:
    plugins = Plugins.load(entry_points=False)
    algo = plugins.resolve("algos", "log_market_info")
    assert algo.settings_model().interval == 10
    with pytest.raises(ConfigError, match=r"moonship.strategies.info.intervall: unknown property"):
        TradingEngine.embedded(
            config({"info": {"algo": "log_market_info", "markets": "btc", "intervall": 1}}), plugins
        )


def test_spread_quoter_quotes_and_trades_on_paper() -> None:
    async def main() -> None:
        engine = TradingEngine.embedded(
            config({"q": {"algo": "spread_quoter", "auto_start": True, "markets": ["btc"],
                          "trade_quantity": "0.01", "spread_bps": 1}})
        )
        await engine.start()
        try:
            await until(lambda: engine.strategies["q"].positions["btc"].fees)
            assert engine.strategies["q"].active
        finally:
            await engine.stop()

    asyncio.run(main())


def test_the_example_distribution_provides_its_own_algo(caplog: pytest.LogCaptureFixture) -> None:
    plugins = Plugins.load()
    assert "price_alert" in plugins.names("algos")

    async def main() -> None:
        engine = TradingEngine.embedded(
            config({"alert": {"algo": "price_alert", "auto_start": True, "markets": ["btc"], "above": "1"}}),
            plugins,
        )
        await engine.start()
        try:
            await until(lambda: engine.strategies["alert"].extra.get("alert") == "above")
        finally:
            await engine.stop()

    with caplog.at_level(logging.WARNING, "moonship"):
        asyncio.run(main())
    assert any(" is above 1" in r.getMessage() for r in caplog.records)
