"""log_market_info: logs each market's book top, spread and last trade at INFO every `interval` seconds.

Places no orders: the first thing to run on a new market, to see that data arrives."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from ..contracts.algo import StrategyMarket, TradingAlgo
from ..model import Side, fmt_decimal


class LogMarketInfoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: seconds between two log lines (per market)
    interval: Decimal = Field(default=Decimal(10), gt=0, le=86400)


class LogMarketInfo(TradingAlgo):
    settings_model = LogMarketInfoSettings
    settings: LogMarketInfoSettings

    async def on_start(self) -> None:
        self._timer = asyncio.create_task(self._every_interval(), name=f"log_market_info:{self.name}")

    async def on_stop(self) -> None:
        self._timer.cancel()
        await asyncio.gather(self._timer, return_exceptions=True)

    async def _every_interval(self) -> None:
        while True:
            for market in self.markets.values():
                self.logger.info("%s", describe(market))
            await self.clock.sleep(float(self.settings.interval))


def describe(market: StrategyMarket) -> str:
    """One line: `btc BTCUSDT | bid 0.5 @ 30000 | ask 0.2 @ 30001 | spread 1 (0.33 bps) | last trade ...`."""
    book = market.book
    parts = [f"{market.name} {market.symbol}"]
    for label, side in (("bid", Side.BUY), ("ask", Side.SELL)):
        top = book.depth(side, 1)
        parts.append(f"{label} {fmt_decimal(top[0][1])} @ {fmt_decimal(top[0][0])}" if top else f"{label} -")
    spread, mid = book.spread, book.mid
    if spread is not None and mid:
        parts.append(f"spread {fmt_decimal(spread)} ({spread / mid * 10000:.2f} bps)")
    else:
        parts.append("spread -")
    trades = market.trades
    if trades:
        last = trades[-1]
        when = last.timestamp.strftime("%H:%M:%S")
        parts.append(
            f"last trade {last.taker_side.value} {fmt_decimal(last.quantity)} @ {fmt_decimal(last.price)} "
            f"at {when}"
        )
    else:
        parts.append("last trade -")
    return " | ".join(parts)
