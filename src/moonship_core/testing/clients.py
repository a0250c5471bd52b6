"""ScriptedClient: a market client whose feed a test drives by hand; orders are acknowledged and recorded."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from ..contracts.client import MarketClient
from ..model import (
    Balance,
    Fill,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    Ticker,
    Trade,
)

D = Decimal


class ScriptedClient(MarketClient):
    """A market whose feed the test drives; orders are acknowledged and recorded."""

    name = "scripted"
    instances: list[ScriptedClient] = []

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.placed: list[OrderRequest] = []
        self.ids = itertools.count(1)
        ScriptedClient.instances.append(self)

    async def connect(self) -> None:
        self.events.book.load_snapshot([("99.00", "1")], [("101.00", "1")], 1)
        self.events.book_changed()
        self.events.status(MarketStatus.OPEN)

    async def close(self) -> None:
        self.events.status(MarketStatus.CLOSED)

    async def get_market_info(self) -> MarketInfo:
        return MarketInfo(self.symbol, "BTC", "USDT", D("0.01"), D("0.001"), D("0.001"), D("10"))

    async def get_ticker(self) -> Ticker:
        return Ticker(self.symbol, None, None, None, self.context.clock.now())

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        return []

    async def place_order(self, request: OrderRequest) -> Order:
        self.placed.append(request)
        return Order.from_request(
            request, self.symbol, OrderStatus.PENDING, self.context.clock.now(), order_id=str(next(self.ids))
        )

    async def cancel_order(self, order: Order) -> Order:
        return order.closed(OrderStatus.CANCELLED, at=self.context.clock.now())

    async def get_order(self, order: Order) -> Order:
        return order

    async def get_open_orders(self) -> list[Order]:
        return []

    async def get_balances(self) -> dict[str, Balance]:
        return {}

    # test controls
    def move(self, bid: str, ask: str, seq: int) -> None:
        self.events.book.apply_update([(bid, "2")], [(ask, "2")], seq, seq)
        self.events.book_changed()

    def fill(self, order: Order, price: str, qty: str, fee: str = "0") -> Order:
        now = self.context.clock.now()
        fill = Fill(f"t{next(self.ids)}", D(price), D(qty), D(fee), "USDT", timestamp=now)
        filled = order.with_fill(fill)
        self.events.order_update(filled)
        return filled
