"""PaperClient: simulated orders against a real client's live book (here a scripted feed, or the sim)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moonship_core.config import MarketConfig, parse_config
from moonship_core.contracts.client import ClientContext, MarketClient, MarketEvents
from moonship_core.contracts.stores import Journal
from moonship_core.errors import (
    ConfigError,
    InsufficientFunds,
    OrderNotFound,
    PostOnlyRejected,
)
from moonship_core.model import (
    Balance,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Ticker,
    TimeInForce,
    Trade,
    round_to_step,
)
from moonship_core.sim import paper as paper_module
from moonship_core.sim.paper import PaperClient
from moonship_core.sim.synthetic import SimClient
from moonship_core.stores.memory import MemoryJournal
from moonship_core.testing import RecordingEvents
from moonship_core.trading.engine import TradingEngine

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
RICH = {"USDT": D(1_000_000), "BTC": D(100)}
Levels = Sequence[tuple[str | Decimal, str | Decimal]]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Feed(MarketClient):
    """A scripted real client: the test pushes book states and trades through it."""

    name = "feed"

    def __init__(self, context: ClientContext, events: MarketEvents) -> None:
        super().__init__(context, events)
        self.sequence = 0
        self.calls: list[str] = []

    def snapshot(self, bids: Levels = (), asks: Levels = ()) -> None:
        self.sequence += 1
        self.events.book.load_snapshot(bids, asks, self.sequence)  # type: ignore[arg-type]
        self.events.book_changed()

    def update(self, bids: Levels = (), asks: Levels = ()) -> None:
        self.sequence += 1
        self.events.book.apply_update(bids, asks, self.sequence, self.sequence)  # type: ignore[arg-type]
        self.events.book_changed()

    def print(self, price: str, quantity: str, taker: Side = BUY) -> Trade:
        trade = Trade(str(len(self.calls)), "BTCUSDT", D(price), D(quantity), taker, self.context.clock.now())
        self.calls.append("trade")
        self.events.trade(trade)
        return trade

    async def connect(self) -> None:
        self.calls.append("connect")

    async def close(self) -> None:
        self.calls.append("close")

    async def get_market_info(self) -> MarketInfo:
        self.calls.append("info")
        return MarketInfo("BTCUSDT", "BTC", "USDT", D("0.01"), D("0.0001"), D("0.0001"), D(1))

    async def get_ticker(self) -> Ticker:
        return Ticker("BTCUSDT", D(1), D(2), D("1.5"), self.context.clock.now())

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        return [Trade("t", "BTCUSDT", D("1.5"), D(1), BUY, self.context.clock.now())][:limit]

    async def place_order(self, request: OrderRequest) -> Order:
        raise AssertionError("the paper client must not send orders")

    async def cancel_order(self, order: Order) -> Order:
        raise AssertionError("the paper client must not send orders")

    async def get_order(self, order: Order) -> Order:
        raise AssertionError("the paper client must not send orders")

    async def get_open_orders(self) -> list[Order]:
        raise AssertionError("the paper client must not send orders")

    async def get_balances(self) -> dict[str, Balance]:
        raise AssertionError("the paper client keeps its own balances")


class Plugins:
    """Stand-in for the engine's client resolver: resolves client names."""

    def __init__(self, **clients: type[MarketClient]) -> None:
        self.clients = clients

    def __call__(self, name: str) -> type[MarketClient]:
        if name not in self.clients:
            raise ConfigError(f"unknown market client {name!r}")
        return self.clients[name]


def make_paper(
    balances: dict[str, Decimal] | None = None,
    sections: dict[str, Any] | None = None,
    real: str = "feed",
    *,
    name: str = "btc",
    symbol: str = "BTCUSDT",
    shared: dict[str, Any] | None = None,
    journal: Journal | None = None,
    **extra: Any,
) -> tuple[PaperClient, RecordingEvents]:
    """A paper client (over the scripted feed by default); `balances={}` configures none (the defaults);
    clients given one `shared` dict are markets of one engine."""
    config = MarketConfig.model_validate(
        {"client": "paper", "symbol": symbol, "real_client": real,
         "balances": RICH if balances is None else balances, **extra}
    )
    events = RecordingEvents("BTCUSDT")
    plugins = Plugins(feed=Feed, sim=SimClient, paper=PaperClient)
    context = ClientContext(
        name, config, {}, plugins, sections or {}, {} if shared is None else shared, journal=journal
    )
    return PaperClient(context, events), events


def feed_of(paper: PaperClient) -> Feed:
    assert isinstance(paper.real, Feed)
    return paper.real


BOOK_BIDS = [("99", "1"), ("98", "2"), ("97", "5")]
BOOK_ASKS = [("100", "1"), ("101", "2"), ("102", "5")]


def with_book(**kw: Any) -> tuple[PaperClient, Feed, RecordingEvents]:
    paper, events = make_paper(**kw)
    feed = feed_of(paper)
    feed.snapshot(BOOK_BIDS, BOOK_ASKS)
    return paper, feed, events


async def settle() -> None:
    """Let the scheduled order updates go out."""
    await asyncio.sleep(0)


def limit(side: Side, qty: str, price: str, tif: TimeInForce = TimeInForce.GTC, **kw: Any) -> OrderRequest:
    return OrderRequest.limit(side, D(qty), D(price), time_in_force=tif, **kw)


def free(paper: PaperClient, asset: str) -> Decimal:
    return paper._balances()[asset].free


def locked(paper: PaperClient, asset: str) -> Decimal:
    return paper._balances()[asset].locked


def fills_of(order: Order) -> list[tuple[Decimal, Decimal]]:
    return [(f.price, f.quantity) for f in order.fills]


# ---------------------------------------------------------------------- config and wiring
def test_config_errors_name_the_property() -> None:
    with pytest.raises(ConfigError, match=r"moonship\.markets\.btc\.fee_rate"):
        make_paper(fee_rate=D("-0.1"))
    with pytest.raises(ConfigError, match=r"moonship\.markets\.btc\.balances\.BTC"):
        make_paper(balances={"BTC": D(-1)})
    with pytest.raises(ConfigError, match=r"markets\.btc\.real_client: unknown market client 'nope'"):
        make_paper(real="nope")
    with pytest.raises(ConfigError, match=r"moonship\.markets\.btc\.real_client"):
        make_paper(real="paper")
    config = MarketConfig(client="paper", symbol="BTCUSDT")
    context = ClientContext("btc", config, {}, Plugins(feed=Feed))
    with pytest.raises(ConfigError, match=r"moonship\.markets\.btc\.real_client: field required"):
        PaperClient(context, RecordingEvents("BTCUSDT"))


def test_real_client_gets_its_own_config_and_settings() -> None:
    settings_section = {"api_key": "k"}
    paper, _ = make_paper(sections={"feed": settings_section}, fee_rate=D("0.002"), other=D(5))
    real = feed_of(paper)
    assert real.context.config.client == "feed"
    assert real.context.config.extra == {"other": D(5)}  # the paper keys are not the real client's
    assert real.context.settings is settings_section
    assert real.context.market_name == "btc"
    assert paper.taker_fee_rate == paper.maker_fee_rate == D("0.002")


def test_sim_validates_its_keys_under_paper() -> None:
    make_paper(real="sim", seed=3, levels=5)
    with pytest.raises(ConfigError, match=r"moonship\.markets\.btc\.levelz"):
        make_paper(real="sim", levelz=5)


@pytest.mark.anyio
async def test_market_data_and_lifecycle_delegate_to_the_real_client() -> None:
    paper, _ = make_paper()
    feed = feed_of(paper)
    await paper.connect()
    assert (await paper.get_market_info()).base_asset == "BTC"
    assert (await paper.get_ticker()).last == D("1.5")
    assert len(await paper.get_recent_trades(5)) == 1
    await paper.close()
    assert feed.calls == ["connect", "info", "close"]


def test_tap_forwards_market_data_first_and_drops_the_real_clients_orders() -> None:
    paper, events = make_paper()
    feed = feed_of(paper)
    tap = feed.events
    assert tap.book is events.book
    ticker = Ticker("BTCUSDT", D(1), D(2), None, T0)
    tap.ticker(ticker)
    tap.status(MarketStatus.OPEN, "ok")
    tap.order_update(
        Order("x", "y", "BTCUSDT", BUY, OrderType.LIMIT, OrderStatus.FILLED, created=T0, updated=T0)
    )
    tap.balances([Balance("BTC", D(5))])
    assert events.log == [("ticker", ticker), ("status", MarketStatus.OPEN)]


# ---------------------------------------------------------------------- post-only
@pytest.mark.anyio
async def test_post_only_that_would_cross_is_rejected_and_not_recorded() -> None:
    paper, _, events = with_book()
    for request in (limit(BUY, "1", "100", post_only=True), limit(SELL, "1", "99", post_only=True),
                    limit(BUY, "1", "150", post_only=True)):
        with pytest.raises(PostOnlyRejected):
            await paper.place_order(request)
    await settle()
    assert await paper.get_open_orders() == []
    assert events.orders == []
    assert paper._balances()["USDT"] == Balance("USDT", RICH["USDT"])
    # the same client order id can be used once it does not cross
    retry = limit(BUY, "1", "99.5", post_only=True, client_order_id="po")
    with pytest.raises(PostOnlyRejected):
        await paper.place_order(limit(BUY, "1", "100", post_only=True, client_order_id="po"))
    order = await paper.place_order(retry)
    assert order.status is OrderStatus.PENDING
    assert [o.id for o in await paper.get_open_orders()] == [order.id]


# ---------------------------------------------------------------------- market orders
@pytest.mark.anyio
async def test_market_buy_walks_levels_at_their_own_prices() -> None:
    paper, _, events = with_book(fee_rate=D(0))
    ack = await paper.place_order(OrderRequest.market(BUY, quantity=D("2.5")))
    assert ack.status is OrderStatus.PENDING
    assert ack.fills == ()
    assert events.orders == []  # the ack comes first
    await settle()
    final = await paper.get_order(ack)
    assert final.status is OrderStatus.FILLED
    assert fills_of(final) == [(D(100), D(1)), (D(101), D("1.5"))]
    # regression: the base walk stops once covered (the first Moonship counted the last level twice)
    assert final.filled_quantity == D("2.5")
    assert final.average_price == (D(100) + D("151.5")) / D("2.5")
    assert [o.status for o in events.orders] == [OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]
    assert events.orders[-1] == final


@pytest.mark.anyio
async def test_market_sell_by_quote_quantity() -> None:
    paper, _, _ = with_book(fee_rate=D(0))
    order = await paper.place_order(OrderRequest.market(SELL, quote_quantity=D(200)))
    final = await paper.get_order(order)
    assert final.status is OrderStatus.FILLED
    # 99 for 1 BTC, then 101 / 98 rounded down to the lot (0.0001)
    assert fills_of(final) == [(D(99), D(1)), (D(98), D("1.0306"))]
    assert D(200) - D("0.0098") <= final.filled_quote_quantity <= D(200)


@pytest.mark.anyio
async def test_market_order_that_runs_out_is_cancelled_and_partially_filled() -> None:
    paper, _, events = with_book()
    order = await paper.place_order(OrderRequest.market(BUY, quantity=D(10)))
    await settle()
    final = await paper.get_order(order)
    assert final.status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    assert final.filled_quantity == D(8)
    assert events.orders[-1].status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    assert await paper.get_open_orders() == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "request_",
    [
        OrderRequest.market(BUY, quantity=D(1)),
        OrderRequest.market(BUY, quote_quantity=D(100)),
        OrderRequest.market(SELL, quantity=D(1)),
        OrderRequest.market(SELL, quote_quantity=D(100)),
    ],
)
async def test_market_order_on_an_empty_book_is_cancelled_without_fills(request_: OrderRequest) -> None:
    # regression: the first Moonship divided by zero here
    paper, events = make_paper()
    order = await paper.place_order(request_)
    await settle()
    final = await paper.get_order(order)
    assert final.status is OrderStatus.CANCELLED
    assert final.fills == ()
    assert final.filled_quantity == 0
    assert paper._balances()["USDT"] == Balance("USDT", RICH["USDT"])
    # and with a book whose side is empty
    if request_.side is BUY:
        feed_of(paper).snapshot(bids=[("1", "1")], asks=[])
    else:
        feed_of(paper).snapshot(bids=[], asks=[("2", "1")])
    again = await paper.get_order(await paper.place_order(OrderRequest.market(request_.side, quantity=D(1))))
    assert again.status is OrderStatus.CANCELLED
    assert events.trades == []


@settings(max_examples=60, deadline=None)
@given(
    asks=st.lists(
        st.tuples(st.integers(1, 400), st.integers(1, 50_000)), min_size=0, max_size=12,
        unique_by=lambda level: level[0],
    ),
    quantity=st.integers(1, 300_000),
)
def test_market_vwap_equals_the_naive_walk(asks: list[tuple[int, int]], quantity: int) -> None:
    levels = sorted((D(p) + D("0.5"), D(q) / 10_000) for p, q in asks)
    wanted = D(quantity) / 10_000

    async def run() -> Order:
        paper, _ = make_paper(fee_rate=D(0))
        feed_of(paper).snapshot([], levels)
        return await paper.get_order(await paper.place_order(OrderRequest.market(BUY, quantity=wanted)))

    order = asyncio.run(run())
    left, cost = wanted, D(0)
    for price, qty in levels:
        take = min(left, qty)
        cost += take * price
        left -= take
        if not left:
            break
    assert order.filled_quantity == wanted - left
    assert order.filled_quote_quantity == cost
    if order.filled_quantity:
        assert order.average_price == cost / (wanted - left)
    assert order.status is (
        OrderStatus.FILLED if not left else
        OrderStatus.CANCELLED_AND_PARTIALLY_FILLED if left < wanted else OrderStatus.CANCELLED
    )


# ---------------------------------------------------------------------- IOC and FOK
@pytest.mark.anyio
async def test_ioc_fills_what_is_available_and_cancels_the_rest() -> None:
    paper, _, _ = with_book()
    order = await paper.get_order(await paper.place_order(limit(BUY, "5", "101", TimeInForce.IOC)))
    assert order.status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    assert fills_of(order) == [(D(100), D(1)), (D(101), D(2))]
    assert all(not f.is_maker for f in order.fills)
    assert await paper.get_open_orders() == []
    assert locked(paper, "USDT") == 0


@pytest.mark.anyio
async def test_ioc_with_nothing_available_is_cancelled_not_filled() -> None:
    # regression: the first Moonship reported this as fully filled
    paper, _, events = with_book()
    order = await paper.place_order(limit(BUY, "1", "99.5", TimeInForce.IOC))
    await settle()
    final = await paper.get_order(order)
    assert final.status is OrderStatus.CANCELLED
    assert final.filled_quantity == 0
    assert final.fills == ()
    assert [o.status for o in events.orders] == [OrderStatus.CANCELLED]
    assert free(paper, "USDT") == RICH["USDT"]
    assert free(paper, "BTC") == RICH["BTC"]


@pytest.mark.anyio
async def test_fok_with_too_little_liquidity_is_cancelled_not_rested() -> None:
    # regression: the first Moonship's FOK skipped the liquidity check and rested as GTC
    paper, feed, _ = with_book()
    order = await paper.place_order(limit(BUY, "4", "101", TimeInForce.FOK))
    await settle()
    final = await paper.get_order(order)
    assert final.status is OrderStatus.CANCELLED
    assert final.fills == ()
    assert await paper.get_open_orders() == []
    # the book moving through its price later does not fill it
    feed.update(asks=[("100", "10")])
    feed.print("100", "10")
    await settle()
    assert (await paper.get_order(order)).filled_quantity == 0
    assert locked(paper, "USDT") == 0


@pytest.mark.anyio
async def test_fok_with_enough_liquidity_fills_across_levels() -> None:
    paper, _, _ = with_book()
    order = await paper.get_order(await paper.place_order(limit(SELL, "3", "98", TimeInForce.FOK)))
    assert order.status is OrderStatus.FILLED
    assert fills_of(order) == [(D(99), D(1)), (D(98), D(2))]


@settings(max_examples=40, deadline=None)
@given(quantity=st.integers(1, 100), price=st.sampled_from(["99", "100", "101", "102", "103"]))
def test_fok_is_all_or_nothing(quantity: int, price: str) -> None:
    async def run() -> Order:
        paper, _, _ = with_book()
        return await paper.get_order(await paper.place_order(limit(BUY, str(D(quantity) / 10), price,
                                                                  TimeInForce.FOK)))

    order = asyncio.run(run())
    assert order.filled_quantity in (0, order.quantity)
    assert order.status in (OrderStatus.FILLED, OrderStatus.CANCELLED)


# ---------------------------------------------------------------------- GTC limits
@pytest.mark.anyio
async def test_crossing_gtc_takes_what_it_can_and_rests_the_rest() -> None:
    paper, feed, _ = with_book(fee_rate=D("0.002"), maker_fee_rate=D("0.001"))
    order = await paper.place_order(limit(BUY, "2", "100.5"))
    await settle()
    live = await paper.get_order(order)
    assert live.status is OrderStatus.PARTIALLY_FILLED
    assert fills_of(live) == [(D(100), D(1))]
    assert live.fills[0].is_maker is False
    assert live.fills[0].fee == D(100) * D("0.002")
    assert [o.id for o in await paper.get_open_orders()] == [order.id]
    # the rest fills later as a maker, at its own price
    feed.print("100.5", "3", SELL)
    await settle()
    done = await paper.get_order(order)
    assert done.status is OrderStatus.FILLED
    assert done.fills[1].is_maker is True
    assert (done.fills[1].price, done.fills[1].quantity) == (D("100.5"), D(1))
    assert done.fills[1].fee == D("100.5") * D("0.001")
    assert await paper.get_open_orders() == []


@pytest.mark.anyio
async def test_resting_orders_fill_on_trades_at_or_through_their_price() -> None:
    paper, feed, events = with_book()
    buy = await paper.place_order(limit(BUY, "1", "98.5"))
    sell = await paper.place_order(limit(SELL, "2", "100.5"))
    feed.print("99", "5", SELL)  # above the buy: nothing
    feed.print("100", "5", BUY)  # below the sell: nothing
    await settle()
    assert events.orders == []
    feed.print("98.5", "0.25", SELL)  # at the buy: partial, up to the trade's quantity
    feed.print("101", "0.5", BUY)  # through the sell
    await settle()
    assert fills_of(await paper.get_order(buy)) == [(D("98.5"), D("0.25"))]
    assert fills_of(await paper.get_order(sell)) == [(D("100.5"), D("0.5"))]
    feed.print("98", "7", SELL)
    await settle()
    final = await paper.get_order(buy)
    assert final.status is OrderStatus.FILLED
    assert fills_of(final) == [(D("98.5"), D("0.25")), (D("98.5"), D("0.75"))]
    assert all(f.is_maker for f in final.fills)
    # simulated fills never become public trades
    assert [t.price for t in events.trades] == [D(99), D(100), D("98.5"), D(101), D(98)]


@pytest.mark.anyio
async def test_one_trade_fills_several_orders_best_price_first_up_to_its_quantity() -> None:
    paper, feed, _ = with_book()
    low = await paper.place_order(limit(BUY, "1", "98.2"))
    high = await paper.place_order(limit(BUY, "1", "98.6"))
    feed.print("98", "1.5", SELL)
    assert (await paper.get_order(high)).filled_quantity == 1
    assert (await paper.get_order(low)).filled_quantity == D("0.5")


@pytest.mark.anyio
async def test_resting_orders_fill_when_the_book_moves_through_them() -> None:
    paper, feed, events = with_book()
    order = await paper.place_order(limit(BUY, "1", "99.5"))
    feed.update(asks=[("99.2", "0.4"), ("99.5", "0.3"), ("100", "0")])
    await settle()
    live = await paper.get_order(order)
    assert fills_of(live) == [(D("99.5"), D("0.7"))]  # what is there up to its limit, at its limit price
    assert live.fills[0].is_maker
    assert events.trades == []
    # another change elsewhere: that liquidity is used up
    feed.update(bids=[("97", "8")])
    assert (await paper.get_order(order)).filled_quantity == D("0.7")
    # the level's quantity changes: it is fresh liquidity
    feed.update(asks=[("99.2", "1")])
    final = await paper.get_order(order)
    assert final.status is OrderStatus.FILLED
    assert fills_of(final)[-1] == (D("99.5"), D("0.3"))


@pytest.mark.anyio
async def test_empty_ask_side_does_not_fill_resting_buys() -> None:
    # regression: the first Moonship took an empty ask side as best ask 0 and filled every buy
    paper, feed, events = with_book()
    order = await paper.place_order(limit(BUY, "1", "99.5"))
    feed.snapshot(bids=BOOK_BIDS, asks=[])
    feed.update(bids=[("99.1", "1")])
    await settle()
    assert (await paper.get_order(order)).status is OrderStatus.PENDING
    assert events.orders == []


# ---------------------------------------------------------------------- used liquidity
@pytest.mark.anyio
async def test_liquidity_a_paper_taker_used_is_not_used_again() -> None:
    paper, feed, _ = with_book()
    first = await paper.get_order(await paper.place_order(OrderRequest.market(BUY, quantity=D("0.6"))))
    second = await paper.get_order(await paper.place_order(OrderRequest.market(BUY, quantity=D("0.6"))))
    assert fills_of(first) == [(D(100), D("0.6"))]
    assert fills_of(second) == [(D(100), D("0.4")), (D(101), D("0.2"))]
    fok = await paper.get_order(await paper.place_order(limit(BUY, "1", "100", TimeInForce.FOK)))
    assert fok.status is OrderStatus.CANCELLED
    feed.update(asks=[("100", "2")])  # the level changed: the overlay for it is dropped
    third = await paper.get_order(await paper.place_order(OrderRequest.market(BUY, quantity=D("2"))))
    assert fills_of(third) == [(D(100), D(2))]
    assert paper._consumed  # remembered until the level changes again
    feed.update(asks=[("100", "3"), ("101", "4")])
    assert not paper._consumed


# ---------------------------------------------------------------------- fees and balances
@pytest.mark.anyio
async def test_fees_are_charged_in_quote_on_every_fill() -> None:
    paper, _, _ = with_book()
    order = await paper.get_order(await paper.place_order(OrderRequest.market(BUY, quantity=D(2))))
    assert [(f.fee, f.fee_asset, f.is_maker) for f in order.fills] == [
        (D(100) * D("0.001"), "USDT", False),
        (D(101) * D("0.001"), "USDT", False),
    ]
    assert order.fees == {"USDT": D("0.201")}


@pytest.mark.anyio
async def test_balances_reserve_move_and_release() -> None:
    paper, feed, events = with_book(balances={"USDT": D(1000), "BTC": D(1)}, fee_rate=D("0.01"))
    # a resting buy locks price * quantity plus the fee
    buy = await paper.place_order(limit(BUY, "2", "98"))
    assert locked(paper, "USDT") == D(196) * D("1.01")
    assert free(paper, "USDT") == D(1000) - D(196) * D("1.01")
    await settle()
    assert events.balance_events  # a balances event follows every change
    # fills move base and quote, fee included
    feed.print("98", "1", SELL)
    assert free(paper, "BTC") == D(2)
    assert locked(paper, "USDT") == D(98) * D("1.01")
    assert free(paper, "USDT") + locked(paper, "USDT") == D(1000) - D(98) * D("1.01")
    # a cancel releases what is left
    cancelled = await paper.cancel_order(buy)
    assert cancelled.status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    assert locked(paper, "USDT") == 0
    assert free(paper, "USDT") == D(1000) - D(98) * D("1.01")
    # a sell locks base; a market sell credits quote less the fee
    sell = await paper.place_order(limit(SELL, "1.5", "200"))
    assert (free(paper, "BTC"), locked(paper, "BTC")) == (D("0.5"), D("1.5"))
    await paper.place_order(OrderRequest.market(SELL, quantity=D("0.5")))
    assert (free(paper, "BTC"), locked(paper, "BTC")) == (D(0), D("1.5"))
    assert free(paper, "USDT") == D(1000) - D(98) * D("1.01") + D("49.5") * D("0.99")
    await paper.cancel_order(sell)
    assert (free(paper, "BTC"), locked(paper, "BTC")) == (D("1.5"), D(0))
    await settle()
    assert {b.asset: b for b in events.balance_events[-1]} == await paper.get_balances()


@pytest.mark.anyio
async def test_a_crossing_buy_releases_what_better_prices_saved() -> None:
    paper, _, _ = with_book(balances={"USDT": D(1000)}, fee_rate=D(0))
    order = await paper.get_order(await paper.place_order(limit(BUY, "3", "101")))
    assert order.status is OrderStatus.FILLED
    assert free(paper, "USDT") == D(1000) - D(100) - D(202)
    assert locked(paper, "USDT") == 0


@pytest.mark.anyio
async def test_insufficient_funds_names_the_asset_needed_and_free() -> None:
    paper, _, events = with_book(balances={"USDT": D(100)})
    with pytest.raises(InsufficientFunds, match=r"USDT: the order needs 100\.1, 100 is free"):
        await paper.place_order(limit(BUY, "1", "100", client_order_id="x"))
    with pytest.raises(InsufficientFunds, match="BTC"):
        await paper.place_order(limit(SELL, "1", "100"))
    with pytest.raises(InsufficientFunds, match="USDT"):
        await paper.place_order(OrderRequest.market(BUY, quantity=D(1)))  # 100 plus a 0.1 fee
    await settle()
    assert events.orders == []
    assert await paper.get_open_orders() == []
    assert await paper.get_balances() == {"USDT": Balance("USDT", D(100))}
    # nothing was recorded: the id is free again
    ok = await paper.place_order(limit(BUY, "0.5", "100", client_order_id="x"))
    assert ok.status is OrderStatus.PENDING
    assert ok.id == "paper-1"  # refused orders take no id


@settings(max_examples=40, deadline=None)
@given(
    orders=st.lists(
        st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 40), st.booleans()), min_size=1, max_size=8
    ),
    trade_prices=st.lists(st.sampled_from(["97", "98", "99", "100", "101", "102"]), max_size=6),
)
def test_balances_conserve_value_minus_fees(
    orders: list[tuple[Side, int, bool]], trade_prices: list[str]
) -> None:
    start = {"USDT": D(100_000), "BTC": D(50)}

    async def run() -> tuple[PaperClient, list[Order]]:
        paper, feed, _ = with_book(balances=start)
        placed = []
        for side, size, market in orders:
            qty = D(size) / 10
            request = (
                OrderRequest.market(side, quantity=qty) if market
                else limit(side, str(qty), "99.5" if side is BUY else "100.5")
            )
            placed.append(await paper.place_order(request))
        for price in trade_prices:
            feed.print(price, "1", BUY)
        for order in await paper.get_open_orders():
            await paper.cancel_order(order)
        await settle()
        return paper, [await paper.get_order(o) for o in placed]

    paper, final = asyncio.run(run())
    balances = paper._balances()
    fills = [(o.side, f) for o in final for f in o.fills]
    base = start["BTC"] + sum((f.quantity if s is BUY else -f.quantity for s, f in fills), D(0))
    quote = start["USDT"] + sum(((-1 if s is BUY else 1) * f.price * f.quantity for s, f in fills), D(0))
    fees = sum((f.fee for _, f in fills), D(0))
    assert balances["BTC"].total == base
    assert balances["USDT"].total == quote - fees
    assert all(b.locked == 0 and b.free >= 0 for b in balances.values())
    assert all(f.fee == f.price * f.quantity * D("0.001") for _, f in fills)


# ---------------------------------------------------------------------- ids, updates, lookups
@pytest.mark.anyio
async def test_ids_are_sequential_and_client_ids_are_idempotent() -> None:
    paper, _, _ = with_book()
    a = await paper.place_order(limit(BUY, "1", "90", client_order_id="a"))
    b = await paper.place_order(limit(BUY, "1", "91", client_order_id="b"))
    assert (a.id, b.id) == ("paper-1", "paper-2")
    assert (a.client_order_id, b.client_order_id) == ("a", "b")
    locked_before = locked(paper, "USDT")
    again = await paper.place_order(limit(BUY, "1", "90", client_order_id="a"))
    assert again == a
    assert locked(paper, "USDT") == locked_before
    assert len(await paper.get_open_orders()) == 2
    # a retry of a finished order returns its final state
    m = await paper.place_order(OrderRequest.market(BUY, quantity=D(1), client_order_id="m"))
    retried = await paper.place_order(OrderRequest.market(BUY, quantity=D(1), client_order_id="m"))
    assert retried.id == m.id
    assert retried.status is OrderStatus.FILLED


@pytest.mark.anyio
async def test_cancel() -> None:
    paper, _, events = with_book()
    order = await paper.place_order(limit(BUY, "1", "95"))
    cancelled = await paper.cancel_order(order)
    assert cancelled.status is OrderStatus.CANCELLED
    assert await paper.get_open_orders() == []
    await settle()
    assert events.orders == [cancelled]
    with pytest.raises(OrderNotFound):
        await paper.cancel_order(order)  # already final
    with pytest.raises(OrderNotFound):
        await paper.cancel_order(
            Order("nope", "nope", "BTCUSDT", BUY, OrderType.LIMIT, OrderStatus.PENDING, created=T0,
                  updated=T0)
        )
    filled = await paper.place_order(OrderRequest.market(BUY, quantity=D(1)))
    with pytest.raises(OrderNotFound):
        await paper.cancel_order(filled)
    # by client order id when the id is not known to the caller
    other = await paper.place_order(limit(SELL, "1", "105", client_order_id="s"))
    probe = Order("", "s", "BTCUSDT", SELL, OrderType.LIMIT, OrderStatus.UNKNOWN, created=T0, updated=T0)
    assert (await paper.get_order(probe)).id == other.id
    assert (await paper.cancel_order(probe)).status is OrderStatus.CANCELLED
    assert locked(paper, "BTC") == 0


@pytest.mark.anyio
async def test_history_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paper_module, "HISTORY_SIZE", 3)
    paper, _, _ = with_book()
    orders = [await paper.place_order(limit(BUY, "1", "90", TimeInForce.IOC)) for _ in range(4)]
    with pytest.raises(OrderNotFound):
        await paper.get_order(orders[0])
    for order in orders[1:]:
        assert (await paper.get_order(order)).status is OrderStatus.CANCELLED
    # a forgotten client order id is a new order
    forgotten = orders[0].client_order_id
    again = await paper.place_order(limit(BUY, "1", "90", TimeInForce.IOC, client_order_id=forgotten))
    assert again.id == "paper-5"


@pytest.mark.anyio
async def test_updates_keep_their_order_when_the_feed_reacts_before_they_go_out() -> None:
    paper, feed, events = with_book()
    order = await paper.place_order(limit(BUY, "2", "100"))  # 1 filled now, 1 rests
    feed.print("99", "1", SELL)  # the rest fills before the first update was delivered
    await settle()
    assert [o.filled_quantity for o in events.orders] == [D(1), D(2)]
    assert events.orders[-1].status is OrderStatus.FILLED
    assert events.orders[-1].id == order.id


def test_driven_without_a_loop_updates_go_out_at_once() -> None:
    paper, events = make_paper(real="sim", seed=1, levels=5, volatility_bps=D(0))
    sim = paper.real
    assert isinstance(sim, SimClient)
    sim.step()
    mid = events.book.mid
    assert mid is not None
    order = asyncio.run(paper.place_order(limit(BUY, "0.001", str(mid))))
    for _ in range(200):
        sim.step()
        if events.orders:
            break
    assert events.orders[-1].id == order.id


# ---------------------------------------------------------------------- over the sim
@pytest.mark.anyio
async def test_paper_over_the_sim_market() -> None:
    start = {"USDT": D(100_000), "BTC": D(2)}
    paper, events = make_paper(balances=start, real="sim", seed=21, levels=20, volatility_bps=D("0.5"))
    sim = paper.real
    assert isinstance(sim, SimClient)
    sim.step()
    placed = []
    for i in range(200):
        sim.step()
        if i % 20 == 0:
            bid, ask = events.book.best_bid, events.book.best_ask
            assert bid is not None and ask is not None
            placed.append(await paper.place_order(limit(BUY, "0.01", str(bid))))
            placed.append(await paper.place_order(limit(SELL, "0.01", str(ask))))
            placed.append(await paper.place_order(OrderRequest.market(BUY, quote_quantity=D(50))))
        await settle()
    final = [await paper.get_order(o) for o in placed]
    assert any(o.status is OrderStatus.FILLED and o.type is OrderType.LIMIT for o in final)
    assert all(o.status is OrderStatus.FILLED for o in final if o.type is OrderType.MARKET)
    # the market saw only the sim's trades
    assert [t.id for t in events.trades] == [str(i) for i in range(1, len(events.trades) + 1)]
    balances = await paper.get_balances()
    assert all(b.free >= 0 for b in balances.values())
    fills = [(o.side, f) for o in final for f in o.fills]
    base = start["BTC"] + sum((f.quantity if s is BUY else -f.quantity for s, f in fills), D(0))
    assert balances["BTC"].total == base


# ---------------------------------------------------------------------- accounts
def test_markets_on_one_account_combine_their_balances() -> None:
    shared: dict[str, Any] = {}
    btc, _ = make_paper({"USDT": D(1000), "BTC": D(1)}, shared=shared)
    eth, _ = make_paper({"USDT": D(1000), "ETH": D(5)}, name="eth", symbol="ETHUSDT", shared=shared)
    assert btc.account is eth.account
    assert btc._balances() == eth._balances() == {
        "BTC": Balance("BTC", D(1)), "ETH": Balance("ETH", D(5)), "USDT": Balance("USDT", D(1000))
    }
    # the same asset with another amount on the same account names both properties
    with pytest.raises(ConfigError) as raised:
        make_paper({"USDT": D(5)}, name="xrp", symbol="XRPUSDT", shared=shared)
    assert str(raised.value).startswith(
        "moonship.markets.xrp.balances.USDT: 5 differs from moonship.markets.btc.balances.USDT: 1000"
    )
    # another account, or another venue, is another account
    other, _ = make_paper({"USDT": D(7)}, name="o", shared=shared, account="second")
    sim, _ = make_paper({"USDT": D(9)}, real="sim", name="s", shared=shared)
    assert other.account is not btc.account and sim.account is not btc.account
    assert (other.account.key, sim.account.key, btc.account.key) == (
        "paper:feed:second", "paper:sim:default", "paper:feed:default"
    )
    assert free(other, "USDT") == D(7) and free(sim, "USDT") == D(9)


@pytest.mark.anyio
async def test_a_fill_on_one_market_changes_the_balance_the_other_sees() -> None:
    shared: dict[str, Any] = {}
    btc, btc_events = make_paper({"USDT": D(1000)}, real="sim", shared=shared, seed=1, levels=5)
    eth, eth_events = make_paper(
        {}, real="sim", name="eth", symbol="ETHUSDT", shared=shared, seed=2, levels=5, start_price=D(2000)
    )
    for paper in (btc, eth):
        await paper.get_market_info()
        assert isinstance(paper.real, SimClient)
        paper.real.step()
    # the one market buys ETH with the USDT the other could have used
    order = await eth.place_order(OrderRequest.market(BUY, quote_quantity=D(600)))
    await settle()
    final = await eth.get_order(order)
    assert final.status is OrderStatus.FILLED
    cost = sum((f.price * f.quantity + f.fee for f in final.fills), D(0))
    assert await btc.get_balances() == await eth.get_balances()
    assert free(btc, "USDT") == D(1000) - cost and free(btc, "ETH") == final.filled_quantity
    # both markets hear of it
    for events in (btc_events, eth_events):
        assert {b.asset: b for b in events.balance_events[-1]} == await btc.get_balances()
    rejected = btc.place_order(OrderRequest.market(BUY, quote_quantity=D(500)))
    with pytest.raises(InsufficientFunds, match="insufficient USDT"):
        await rejected
    # order ids are the account's
    assert final.id == "paper-1"
    again = await btc.place_order(limit(BUY, "0.001", "1"))
    assert again.id == "paper-2"


@pytest.mark.anyio
async def test_default_balances_are_10000_quote_and_10000_quote_worth_of_base(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", "moonship.paper")
    paper, events = make_paper({}, real="sim", seed=5, levels=5)
    await paper.get_market_info()
    assert paper._balances() == {"USDT": Balance("USDT", D(10_000))}  # the base waits for the first mid
    sim = paper.real
    assert isinstance(sim, SimClient)
    for _ in range(20):
        sim.step()
    lines = [r.getMessage() for r in caplog.records if "start balances" in r.getMessage()]
    assert len(lines) == 1 and caplog.records[0].levelname == "INFO"
    mid = D(lines[0].rsplit(" ", 1)[1].rstrip(")"))
    btc = free(paper, "BTC")
    assert btc == round_to_step(D(10_000) / mid, D("1e-8")) and abs(btc * mid - 10_000) < mid * D("1e-8")
    assert lines[0] == (
        f"paper account paper:sim:default: start balances {btc} BTC, 10000 USDT (the default: 10000 of each "
        f"quote asset, and 10000 USDT worth of BTC at its first mid {mid})"
    )
    assert free(paper, "USDT") == D(10_000)
    # a quote can be paid for at once, as the new user expected
    bid = events.book.best_bid
    assert bid is not None
    order = await paper.place_order(limit(SELL, "0.01", str(bid + 1000), post_only=True))
    assert order.status is OrderStatus.PENDING


async def session(
    journal: Journal, bids: Levels = BOOK_BIDS, **kw: Any
) -> tuple[PaperClient, Feed, RecordingEvents]:
    """A paper client as an engine (re)started on `journal` makes it: taken up at get_market_info."""
    paper, events = make_paper(journal=journal, **kw)
    await paper.get_market_info()
    feed = feed_of(paper)
    feed.snapshot(bids, BOOK_ASKS)
    return paper, feed, events


@pytest.mark.anyio
async def test_a_paper_account_carries_on_from_the_journal() -> None:
    journal = MemoryJournal()
    first, _, _ = await session(journal, balances={"USDT": D(1000), "BTC": D(3)})
    await first.place_order(limit(BUY, "1", "95", client_order_id="bid"))
    await first.place_order(limit(SELL, "2", "99", client_order_id="ask"))  # 1 fills at 99, 1 rests
    await first.place_order(OrderRequest.market(BUY, quantity=D(1), client_order_id="mkt"))
    await settle()
    before = first._balances()
    opened = await first.get_open_orders()
    assert [o.client_order_id for o in opened] == ["bid", "ask"]
    fill_ids = {f.trade_id for o in opened for f in o.fills} | {
        f.trade_id for f in (await first.get_order(probe("mkt"))).fills
    }
    state = await journal.get("paper:feed:default")
    assert state is not None and state["order_seq"] == 3 and state["start"] == {"USDT": "1000", "BTC": "3"}

    # a restart (with other configured balances: the journaled account wins)
    # (the bid at 99 that the ask took is gone, as the paper taker left it)
    second, feed, events = await session(journal, BOOK_BIDS[1:], balances={"USDT": D(5)})
    assert second._balances() == before
    assert await second.get_open_orders() == opened  # ids, client order ids, fills, all as they were
    assert await second.get_order(probe("ask")) == opened[1]  # by client order id, as reconciliation asks
    with pytest.raises(OrderNotFound):
        await second.get_order(probe("mkt"))  # a closed order is the journal's business, not the account's
    # it trades on: the rest of the ask fills, releasing exactly what it locked; ids do not repeat
    feed.print("99", "1", BUY)
    await settle()
    ask = await second.get_order(probe("ask"))
    assert ask.status is OrderStatus.FILLED and ask.filled_quantity == D(2)
    assert ask.fills[-1].trade_id not in fill_ids
    assert locked(second, "BTC") == 0
    assert free(second, "USDT") == before["USDT"].free + D(99) * D("0.999")
    assert (await second.place_order(limit(BUY, "1", "90"))).id == "paper-4"
    await second.cancel_order(await second.get_order(probe("bid")))
    await settle()
    assert events.orders[-1].status is OrderStatus.CANCELLED
    assert locked(second, "USDT") == D(90) * D("1.001")
    # and the journal has all of it, for the next restart
    third, _, _ = await session(journal)
    assert third._balances() == second._balances()
    assert [o.id for o in await third.get_open_orders()] == ["paper-4"]


@pytest.mark.anyio
async def test_journaled_orders_that_would_not_rest_end_cancelled_and_others_wait_for_their_market() -> None:
    journal = MemoryJournal()
    shared: dict[str, Any] = {}
    first, _, _ = await session(journal, shared=shared)
    other, _, _ = await session(journal, shared=shared, name="other")
    await first.place_order(limit(BUY, "1", "95", client_order_id="gtc"))
    elsewhere = await other.place_order(limit(BUY, "1", "94", client_order_id="elsewhere"))
    await settle()
    state = await journal.get("paper:feed:default")
    assert state is not None
    # as if killed while an IOC order was in flight
    entry = next(e for e in state["orders"] if e["order"]["client_order_id"] == "gtc")
    entry["order"]["time_in_force"] = "IOC"
    journal.put("paper:feed:default", state)

    second, _, events = await session(journal)  # the market "other" is not configured now
    ioc = await second.get_order(probe("gtc"))
    assert ioc.status is OrderStatus.CANCELLED and "ended before" in (ioc.reason or "")
    await settle()
    assert events.orders == [ioc]
    # the other market's order keeps its funds locked, and stays in the journal for when it comes back
    assert locked(second, "USDT") == D(94) * D("1.001")
    state = await journal.get("paper:feed:default")
    assert state is not None
    assert [e["order"]["client_order_id"] for e in state["orders"]] == ["elsewhere"]
    back, _, _ = await session(journal, name="other")
    assert [o.client_order_id for o in await back.get_open_orders()] == ["elsewhere"]
    # a market of that name in another symbol does not take them
    await settle()
    moved, _, _ = await session(journal, name="other", symbol="ETHUSDT")
    assert await moved.get_open_orders() == []
    await settle()
    state = await journal.get("paper:feed:default")
    assert state is not None and [e["order"]["id"] for e in state["orders"]] == [elsewhere.id]


def probe(client_order_id: str) -> Order:
    """What the order manager asks about an order it knows only by client order id."""
    return Order(
        "", client_order_id, "BTCUSDT", BUY, OrderType.LIMIT, OrderStatus.UNKNOWN, created=T0, updated=T0
    )


@pytest.mark.anyio
async def test_an_engines_paper_markets_over_one_venue_trade_on_one_account() -> None:
    sim = {"client": "paper", "real_client": "sim", "events_per_second": 200}
    config = parse_config({"moonship": {"engine": {"name": "shared"}, "markets": {
        "btc": {**sim, "symbol": "BTCUSDT", "seed": 1, "balances": {"USDT": 1000}},
        "eth": {**sim, "symbol": "ETHUSDT", "seed": 2, "start_price": 2000},
        "alone": {**sim, "symbol": "BTCUSDT", "seed": 3, "account": "sub", "balances": {"USDT": 50}},
    }}})
    engine = TradingEngine.embedded(config)
    await engine.start()
    try:
        btc, eth, alone = (engine.markets[name] for name in ("btc", "eth", "alone"))
        await asyncio.gather(btc.open(), eth.open(), alone.open())
        for _ in range(200):
            if btc.book.mid is not None and eth.book.mid is not None:
                break
            await asyncio.sleep(0.01)
        order = await eth.place_order(OrderRequest.market(BUY, quote_quantity=D(100)))
        for _ in range(200):
            if "ETH" in btc.balances:
                break
            await asyncio.sleep(0.01)
        final = await eth.get_order(order)
        cost = sum((f.price * f.quantity + f.fee for f in final.fills), D(0))
        assert final.status is OrderStatus.FILLED
        assert btc.balances["USDT"].total == D(1000) - cost  # the BTC market sees the ETH market's buy
        assert btc.balances["ETH"].total == final.filled_quantity
        assert await btc.get_balances() == await eth.get_balances()
        assert await alone.get_balances() == {"USDT": Balance("USDT", D(50))}
    finally:
        await engine.stop()


# ---------------------------------------------------------------------- dispatch vs the naive reference
class NaivePaper(PaperClient):
    """The dispatch before the price index: every open order looked at, re-sorted, on every event."""

    def on_book_changed(self) -> None:
        book = self.events.book
        stale = [key for key, (seen, _) in self._consumed.items() if book.quantity_at(*key) != seen]
        for key in stale:
            del self._consumed[key]
        best_ask, best_bid = book.best_ask, book.best_bid
        for live in self._all_by_priority():
            price, remaining = live.order.price, live.order.remaining_quantity
            if price is None or not remaining:
                continue
            side = live.order.side
            best = best_ask if side is BUY else best_bid
            if best is None or (best > price if side is BUY else best < price):
                continue
            takes, _ = self._walk(side.opposite, price, remaining)
            total = sum((q for _, q in takes), D(0))
            if total:
                self._consume(side.opposite, takes)
                self._fill(live, price, total, is_maker=True)

    def on_trade(self, trade: Trade) -> None:
        left = trade.quantity
        for live in self._all_by_priority():
            price, remaining = live.order.price, live.order.remaining_quantity
            if price is None or not remaining:
                continue
            if trade.price <= price if live.order.side is BUY else trade.price >= price:
                quantity = min(remaining, left)
                self._fill(live, price, quantity, is_maker=True)
                left -= quantity
                if not left:
                    return

    def _all_by_priority(self) -> list[Any]:
        return sorted(
            self._open.values(),
            key=lambda live: -(live.order.price or D(0)) if live.order.side is BUY
            else live.order.price or D(0),
        )


GRID = st.integers(95, 105).map(lambda p: f"{p}.{p % 3 * 25}")
EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("limit"), st.sampled_from([BUY, SELL]), st.integers(1, 30), GRID),
        st.tuples(st.just("update"), st.sampled_from([BUY, SELL]), st.integers(0, 30), GRID),
        st.tuples(st.just("trade"), st.sampled_from([BUY, SELL]), st.integers(1, 30), GRID),
        st.tuples(st.just("cancel"), st.sampled_from([BUY, SELL]), st.integers(0, 20), GRID),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(events=EVENTS)
def test_price_indexed_dispatch_fills_as_the_naive_one(events: list[tuple[str, Side, int, str]]) -> None:
    """Resting orders looked up by price fill exactly as when every open order is looked at."""

    async def run(client: type[PaperClient]) -> list[tuple[Any, ...]]:
        paper, recorder = make_paper(shared={})
        paper.__class__ = client
        feed = feed_of(paper)
        feed.snapshot(BOOK_BIDS, BOOK_ASKS)
        placed: list[Order] = []
        for kind, side, size, price in events:
            qty = str(D(size) / 10)
            if kind == "limit":
                placed.append(await paper.place_order(limit(side, qty, price)))
            elif kind == "update":
                level = [(price, str(D(size) / 10))]
                if side is BUY:
                    feed.update(bids=level)
                else:
                    feed.update(asks=level)
            elif kind == "trade":
                feed.print(price, qty, side)
            else:
                open_orders = await paper.get_open_orders()
                if open_orders:
                    await paper.cancel_order(open_orders[size % len(open_orders)])
            await settle()
        return [
            (o.id, o.status, o.filled_quantity, [(f.price, f.quantity, f.fee, f.is_maker) for f in o.fills])
            for o in recorder.orders
        ] + [tuple(paper._balances().values())]

    indexed, naive = asyncio.run(run(PaperClient)), asyncio.run(run(NaivePaper))
    assert indexed == naive
