"""log_market_info: logs the book top, price, spread and market info at DEBUG (the seed's test algo)."""

from __future__ import annotations

import logging

from moonship_core import Side, StrategyMarket, Ticker, TradingAlgo


class LogMarketInfo(TradingAlgo):
    async def on_order_book(self, market: StrategyMarket) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self._log(market)

    async def on_ticker(self, market: StrategyMarket, ticker: Ticker) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self._log(market)

    def _log(self, market: StrategyMarket) -> None:
        book = market.book
        bids = ", ".join(f"{q}@{p}" for p, q in book.depth(Side.BUY, 10))
        asks = ", ".join(f"{q}@{p}" for p, q in book.depth(Side.SELL, 10))
        self.logger.debug(
            "%s price %s bid %s ask %s spread %s | bids %s | asks %s | %s",
            market.name,
            market.last_price,
            book.best_bid,
            book.best_ask,
            book.spread,
            bids,
            asks,
            market.info,
        )
