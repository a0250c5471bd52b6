"""Market: state kept from client events, order gating, rounding and the unconfirmed-order path."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from moonship_core import (
    ClientContext,
    Fill,
    InvalidOrder,
    MarketInfo,
    MarketStatus,
    Order,
    OrderNotFound,
    OrderRequest,
    OrderStatus,
    OrderStatusUnknown,
    Side,
    Trade,
    round_to_step,
)
from moonship_core.config import MarketConfig
from moonship_core.plugins import Plugins
from moonship_core.testing import ScriptedClient
from moonship_core.trading.market import Market

D = Decimal


class Inbox:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def notify_book(self, market: Market) -> None:
        self.events.append(("book", market.book.best_bid))

    def notify(self, kind: str, market: Market, payload: Any) -> None:
        self.events.append((kind, payload))


#: the client resolver of a market that wraps no other client
RESOLVE = partial(Plugins().resolve, "market_clients")


def make_market(**config: Any) -> Market:
    cfg = MarketConfig.model_validate({"client": "scripted", "symbol": "BTCUSDT", **config})
    return Market("btc", cfg, ScriptedClient, ClientContext("btc", cfg, {}, RESOLVE))


def trade(seconds: int, price: str, qty: str = "1", side: Side = Side.BUY) -> Trade:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return Trade(str(seconds), "BTCUSDT", D(price), D(qty), side, at)


def test_state_is_updated_before_subscribers_hear() -> None:
    async def main() -> None:
        market = make_market(max_recent_trade_list_size=3, candle_period=60)
        inbox = Inbox()
        market.subscribe(inbox)
        await market.open()
        assert market.status is MarketStatus.OPEN and market.book.best_bid == D("99.00")
        feed = market.client.events
        for i, (secs, price) in enumerate([(0, "100"), (30, "105"), (59, "98"), (61, "101"), (130, "102")]):
            feed.trade(trade(secs, price, qty=str(i + 1), side=Side.SELL if i == 2 else Side.BUY))
        assert [t.price for t in market.trades] == [D("98"), D("101"), D("102")]  # bounded, oldest dropped
        assert market.last_price == D("102")
        first, second = market.candles  # closed candles only
        assert (first.open, first.high, first.low, first.close) == (D("100"), D("105"), D("98"), D("98"))
        assert first.volume == D("6") and first.buy_volume == D("3")
        assert first.start_time == datetime(2026, 1, 1, tzinfo=UTC)
        assert second.start_time == datetime(2026, 1, 1, 0, 1, tzinfo=UTC) and second.close == D("101")
        kinds = [k for k, _ in inbox.events]
        assert kinds.count("trade") == 5 and kinds.count("candle") == 2
        feed.book.apply_update([("99.50", "1")], [], 2, 2)
        feed.book_changed()
        assert inbox.events[-1] == ("book", D("99.50"))
        await market.close()
        assert market.status is MarketStatus.CLOSED

    asyncio.run(main())


def test_a_late_trade_keeps_the_current_candle() -> None:
    """A trade that arrives after its candle closed neither replaces nor reopens the current candle."""

    async def main() -> None:
        market = make_market(candle_period=60)
        await market.open()
        feed = market.client.events
        for secs, price in [(0, "100"), (61, "101"), (30, "90"), (62, "103"), (125, "104")]:
            feed.trade(trade(secs, price))
        first, second = market.candles
        assert first.start_time == datetime(2026, 1, 1, tzinfo=UTC) and first.close == D("100")
        assert second.start_time == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
        assert (second.open, second.close, second.volume) == (D("101"), D("103"), D("2"))
        assert market.last_price == D("104")
        await market.close()

    asyncio.run(main())


def test_zero_trade_list_size_keeps_no_trades() -> None:
    async def main() -> None:
        market = make_market(max_recent_trade_list_size=0)
        await market.open()
        market.client.events.trade(trade(0, "100"))
        assert list(market.trades) == [] and market.last_price == D("100")

    asyncio.run(main())


def test_orders_are_gated_by_market_status() -> None:
    async def main() -> None:
        market = make_market()
        inbox = Inbox()
        market.orders.attach("inbox", inbox)
        closed = await market.place_order(OrderRequest.limit(Side.BUY, D("1"), D("100")), owner="inbox")
        assert (closed.status, closed.error) == (OrderStatus.REJECTED, "MarketClosed")
        assert inbox.events == [("order", closed)]  # the owner hears of it like any update
        await market.open()
        market.client.events.status(MarketStatus.OPEN_POST_ONLY, "exchange in post-only mode")
        refused = await market.place_order(OrderRequest.limit(Side.BUY, D("1"), D("100")))
        assert (refused.status, refused.error) == (OrderStatus.REJECTED, "MarketClosed")
        assert refused.reason is not None and "post-only" in refused.reason
        order = await market.place_order(OrderRequest.limit(Side.BUY, D("1"), D("100"), post_only=True))
        assert order.status is OrderStatus.PENDING
        client = market.client
        assert isinstance(client, ScriptedClient) and len(client.placed) == 1

    asyncio.run(main())


def test_market_defaults_and_rounding_applied_before_sending() -> None:
    async def main() -> None:
        market = make_market(account="sub-1", enable_margin=True)
        await market.open()
        await market.place_order(OrderRequest.limit(Side.SELL, D("1.23456"), D("100.001")))
        await market.place_order(OrderRequest.market(Side.BUY, quote_quantity=D("50.123456789")))
        client = market.client
        assert isinstance(client, ScriptedClient)
        sell, buy = client.placed
        assert (sell.price, sell.quantity, sell.account, sell.margin) == (
            D("100.01"),
            D("1.234"),
            "sub-1",
            True,
        )
        assert buy.quote_quantity == D("50.12345678")

    asyncio.run(main())


@pytest.mark.parametrize(
    ("tick", "lot"), [("0.01", "0.001"), ("1", "1E+1"), ("0.5", "0.025"), ("0.010", "0.0010")]
)
def test_prepare_rounds_as_round_to_step_to_any_step(tick: str, lot: str) -> None:
    """Steps of 10^n take one quantize, others round_to_step: the same values with the same exponents (the
    text an exchange gets), a buy never above and a sell never below the strategy's price."""
    market = make_market()
    market.info = MarketInfo("BTCUSDT", "BTC", "USDT", D(tick), D(lot))
    prices = ["100", "100.004", "100.005", "99.999", "100.01", "100.010", "123.456789", "1.51", "1E+3"]
    quantities = ["12", "123.456", "25.0001", "1000.5", "17"]
    for price, qty in zip(prices, quantities * 2, strict=False):
        for side in Side:
            prepared = market.prepare(OrderRequest.limit(side, D(qty), D(price)))
            up = side is Side.SELL
            expected_price = round_to_step(D(price), D(tick), up=up)
            expected_qty = round_to_step(D(qty), D(lot))
            assert str(prepared.price) == str(expected_price), (side, price)
            assert str(prepared.quantity) == str(expected_qty), qty
            assert prepared.price is not None
            assert prepared.price >= D(price) if up else prepared.price <= D(price)
    with pytest.raises(InvalidOrder, match="rounds to 0"):  # refused, not a ValueError out of place_order
        market.prepare(OrderRequest.limit(Side.BUY, D(lot) * 3, D(tick) * D("0.9")))


class Unconfirmed(ScriptedClient):
    """Times out on placement although the exchange took the order; answers queries after a while."""

    queries = 0

    async def place_order(self, request: OrderRequest) -> Order:
        self.placed.append(request)
        raise OrderStatusUnknown("timed out", client_order_id=request.client_order_id)

    async def get_order(self, order: Order) -> Order:
        Unconfirmed.queries += 1
        if Unconfirmed.queries < 2:
            raise OrderStatusUnknown("not yet", client_order_id=order.client_order_id)
        request = self.placed[-1]
        found = Order(
            "77",
            request.client_order_id,
            self.symbol,
            request.side,
            request.type,
            OrderStatus.PENDING,
            quantity=request.quantity,
            price=request.price,
            created=self.context.clock.now(),
            updated=self.context.clock.now(),
        )
        return found.with_fill(Fill("t1", D("100"), D("1"), timestamp=self.context.clock.now()))


async def place_unconfirmed(client_class: type[ScriptedClient]) -> tuple[Market, list[Order]]:
    """Place an order whose placement times out; return the market and the order updates its owner got."""
    cfg = MarketConfig.model_validate({"client": "x", "symbol": "BTCUSDT"})
    market = Market("btc", cfg, client_class, ClientContext("btc", cfg, {}, RESOLVE))
    inbox = Inbox()
    await market.open()
    market.orders.attach("inbox", inbox)
    sent = await market.place_order(OrderRequest.limit(Side.BUY, D("1"), D("100")), owner="inbox")
    assert sent.status is OrderStatus.UNKNOWN
    assert market.open_orders() == [sent]  # the strategy sees it, so it does not place it again
    for _ in range(100):
        if any(k == "order" for k, _ in inbox.events):
            break
        await asyncio.sleep(0.05)
    return market, [p for k, p in inbox.events if k == "order"]


def test_unconfirmed_order_is_queried_until_known_and_reaches_its_owner() -> None:
    async def main() -> None:
        market, orders = await place_unconfirmed(Unconfirmed)
        assert orders and orders[-1].status is OrderStatus.FILLED and orders[-1].id == "77"
        assert market.open_orders() == []

    asyncio.run(main())


class NeverArrived(ScriptedClient):
    """Times out on placement; the exchange never heard of the order."""

    async def place_order(self, request: OrderRequest) -> Order:
        raise OrderStatusUnknown("timed out", client_order_id=request.client_order_id)

    async def get_order(self, order: Order) -> Order:
        raise OrderNotFound("unknown order")


def test_unconfirmed_order_the_exchange_never_saw_ends_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("moonship_core.trading.orders.UNKNOWN_GRACE", 0.3)

    async def main() -> None:
        market, orders = await place_unconfirmed(NeverArrived)
        (order,) = orders
        assert order.status is OrderStatus.REJECTED and order.reason == "never reached the exchange"
        assert order.error == "OrderNotFound"
        assert market.open_orders() == []

    asyncio.run(main())
