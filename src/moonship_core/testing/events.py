"""RecordingEvents: the market's side of MarketEvents for client tests (a real book, every event kept)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..book import OrderBook
from ..model import Balance, Candle, MarketStatus, Order, Ticker, Trade


class RecordingEvents:
    """What a client pushes, recorded: `log` holds every event in order as (kind, payload), and each kind has
    its own list."""

    def __init__(self, symbol: str, price_decimals: int = 8) -> None:
        self.book = OrderBook(symbol, price_decimals=price_decimals)
        self.log: list[tuple[str, Any]] = []
        self.book_changes = 0
        self.statuses: list[tuple[MarketStatus, str]] = []
        self.trades: list[Trade] = []
        self.tickers: list[Ticker] = []
        self.candles: list[Candle] = []
        self.orders: list[Order] = []
        self.balance_events: list[list[Balance]] = []

    def book_changed(self) -> None:
        self.book_changes += 1
        self.log.append(("book", self.book.sequence))

    def trade(self, trade: Trade) -> None:
        self.trades.append(trade)
        self.log.append(("trade", trade))

    def ticker(self, ticker: Ticker) -> None:
        self.tickers.append(ticker)
        self.log.append(("ticker", ticker))

    def candle(self, candle: Candle) -> None:
        self.candles.append(candle)
        self.log.append(("candle", candle))

    def status(self, status: MarketStatus, reason: str = "") -> None:
        self.statuses.append((status, reason))
        self.log.append(("status", status))

    def order_update(self, order: Order) -> None:
        self.orders.append(order)
        self.log.append(("order", order))

    def balances(self, balances: Sequence[Balance]) -> None:
        self.balance_events.append(list(balances))
        self.log.append(("balances", list(balances)))

    @property
    def status_now(self) -> MarketStatus | None:
        return self.statuses[-1][0] if self.statuses else None

    def unsynced(self, since: int = 0) -> list[str]:
        """The reasons of the UNSYNCED statuses from `statuses[since]` on (a resync may already be over
        when a test looks at `status_now`)."""
        return [reason for status, reason in self.statuses[since:] if status is MarketStatus.UNSYNCED]

    @property
    def balance_updates(self) -> list[Balance]:
        """Every balance pushed, oldest first."""
        return [balance for event in self.balance_events for balance in event]

    def updates_of(self, client_order_id: str) -> list[Order]:
        return [order for order in self.orders if order.client_order_id == client_order_id]

    def latest(self, client_order_id: str) -> Order | None:
        updates = self.updates_of(client_order_id)
        return updates[-1] if updates else None
