"""The log a trader reads: one line per fill naming the strategy with its position and P/L after it, a
summary line per strategy every `moonship.engine.summary_interval` seconds, and a table at stop."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

from moonship_core.config import parse_config
from moonship_core.trading.engine import TradingEngine


def config(interval: Any) -> Any:
    return parse_config({"moonship": {
        "engine": {"name": "logs", "summary_interval": interval},
        "markets": {"btc": {"client": "paper", "real_client": "sim", "symbol": "BTCUSDT", "seed": 11,
                            "events_per_second": 200, "volatility_bps": 1,
                            "balances": {"USDT": "100000", "BTC": "1"}}},
        "strategies": {
            "quoter": {"algo": "spread_quoter", "auto_start": True, "markets": ["btc"],
                       "trade_quantity": "0.01", "spread_bps": 1},
            "idle": {"algo": "log_market_info", "markets": ["btc"]},
        },
    }})


def test_fill_lines_summaries_and_the_table_at_stop(caplog: pytest.LogCaptureFixture) -> None:
    def messages(logger: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == logger]

    async def main() -> None:
        engine = TradingEngine.embedded(config("0.2"))
        await engine.start()
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while not (
                [m for m in messages("moonship.strategy.quoter") if m.startswith("fill ")]
                and [m for m in messages("moonship.strategy.quoter") if m.startswith("summary: ")]
            ):
                assert asyncio.get_running_loop().time() < deadline, "no fill or no summary"
                await asyncio.sleep(0.02)
        finally:
            await engine.stop()

    with caplog.at_level(logging.INFO, "moonship"):
        asyncio.run(main())
    fill = next(m for m in messages("moonship.strategy.quoter") if m.startswith("fill "))
    assert re.fullmatch(
        r"fill (BUY|SELL) 0\.01 BTC @ [\d.]+ on btc fee [\d.]+ USDT \| position -?[\d.]+( @ [\d.]+)? \| "
        r"P/L -?[\d.]+ USDT \(realized -?[\d.]+, unrealized -?[\d.]+\)",
        fill,
    ), fill
    summary = next(m for m in messages("moonship.strategy.quoter") if m.startswith("summary: "))
    assert re.fullmatch(
        r"summary: position -?[\d.]+ BTC \| P/L -?[\d.]+ USDT \(realized -?[\d.]+, unrealized -?[\d.]+\) \| "
        r"fees [\d.]+ USDT \| orders \d+ \(\d+ open\) \| fills \d+",
        summary,
    ), summary
    assert not any(m.startswith("summary: ") for m in messages("moonship.strategy.idle"))  # not running
    [at_stop] = [m for m in messages("moonship.engine") if m.startswith("summary at stop:")]
    header, quoter, idle = at_stop.splitlines()[1:]
    assert header.split() == [
        "STRATEGY", "STATE", "POSITION", "P/L", "REALIZED", "UNREALIZED", "FEES", "ORDERS", "FILLS"
    ]
    assert quoter.split()[:2] == ["quoter", "stopped"] and int(quoter.split()[-1]) >= 1
    assert idle.split()[:2] == ["idle", "stopped"] and idle.split()[-2:] == ["0", "0"]


def test_summary_interval_defaults_to_60_and_0_disables() -> None:
    assert parse_config({"moonship": {}}).engine.summary_interval == 60
    engine = TradingEngine.embedded(config(0))
    assert engine.summary_interval == 0
