"""SimClient: the offline synthetic market."""

from __future__ import annotations

import asyncio
import itertools
import time
import zlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moonship_core.book import OrderBook
from moonship_core.clock import LiveClock
from moonship_core.config import MarketConfig
from moonship_core.contracts.client import ClientContext
from moonship_core.errors import ConfigError, ExchangeError
from moonship_core.model import (
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Trade,
)
from moonship_core.sim.synthetic import SimClient, split_symbol
from moonship_core.testing import RecordingEvents

TICK = Decimal("0.01")


class Recorder(RecordingEvents):
    """RecordingEvents that also note the book around each trade as it comes."""

    def __init__(self, symbol: str = "BTCUSDT") -> None:
        super().__init__(symbol)
        #: (trade, best bid, best ask, quantity at the traded level) at the moment each trade came
        self.trade_context: list[tuple[Trade, Decimal | None, Decimal | None, Decimal]] = []

    @property
    def sequences(self) -> list[int | None]:
        return [sequence for kind, sequence in self.log if kind == "book"]

    def trade(self, trade: Trade) -> None:
        side = Side.SELL if trade.taker_side is Side.BUY else Side.BUY
        level = self.book.quantity_at(side, trade.price)
        self.trade_context.append((trade, self.book.best_bid, self.book.best_ask, level))
        super().trade(trade)


def make_sim(symbol: str = "BTCUSDT", **extra: Any) -> tuple[SimClient, Recorder]:
    config = MarketConfig(client="sim", symbol=symbol, **extra)
    events = Recorder(symbol)
    return SimClient(ClientContext("m", config, {}, None), events), events  # type: ignore[arg-type]


def fingerprint(events: Recorder) -> list[Any]:
    """Everything a run published except timestamps."""
    out: list[Any] = [(events.book.depth(Side.BUY, 1000), events.book.depth(Side.SELL, 1000))]
    for kind, item in events.log:
        if kind == "trade":
            out.append((item.id, item.price, item.quantity, item.taker_side))
        elif kind == "ticker":
            out.append((item.bid, item.ask, item.last))
        else:
            out.append((kind, item))
    return out


def run_steps(sim: SimClient, events: Recorder, n: int) -> None:
    """Step `n` times, checking the book after each event."""
    for _ in range(n):
        sim.step()
        check_book(events.book, sim.settings.levels)


def check_book(book: OrderBook, levels: int) -> None:
    bid, ask = book.best_bid, book.best_ask
    if bid is not None and ask is not None:
        assert ask - bid >= TICK  # never crossed, at least one tick of spread
    bids, asks = list(book.levels(Side.BUY)), list(book.levels(Side.SELL))
    assert len(bids) <= levels
    assert len(asks) <= levels
    for price, qty in bids + asks:
        assert price > 0
        assert qty > 0
        assert price % TICK == 0


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("symbol", "base", "quote"),
    [
        ("BTCUSDT", "BTC", "USDT"),
        ("ETHUSDC", "ETH", "USDC"),
        ("BNBBUSD", "BNB", "BUSD"),
        ("XBTZAR", "XBT", "ZAR"),
        ("BTCEUR", "BTC", "EUR"),
        ("BTCUSD", "BTC", "USD"),
        ("ETHBTC", "ETH", "BTC"),
        ("LINKETH", "LINK", "ETH"),
        ("ETH/BTC", "ETH", "BTC"),
        ("SOL-USDT", "SOL", "USDT"),
        ("ABCDEF", "ABC", "DEF"),
    ],
)
def test_split_symbol(symbol: str, base: str, quote: str) -> None:
    assert split_symbol(symbol) == (base, quote)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("events_per_second", 0),
        ("events_per_second", "fast"),
        ("levels", 0),
        ("tick_size", Decimal("-0.01")),
        ("start_price", 0),
        ("volatility_bps", -1),
        ("seed", "abc"),
        ("bogus", 1),
    ],
)
def test_bad_config_names_the_property(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"moonship\.markets\.m\.{key}"):
        make_sim(**{key: value})


@pytest.mark.anyio
async def test_market_info_and_defaults() -> None:
    sim, _ = make_sim("XBTZAR", tick_size=Decimal("1"), lot_size=Decimal("0.0001"), min_notional=Decimal(10))
    info = await sim.get_market_info()
    assert (info.symbol, info.base_asset, info.quote_asset) == ("XBTZAR", "XBT", "ZAR")
    assert (info.tick_size, info.lot_size, info.min_quantity, info.min_notional) == (
        Decimal(1), Decimal("0.0001"), Decimal("0.0001"), Decimal(10)
    )
    defaults, _ = make_sim()
    assert defaults.settings.start_price == 30000
    assert defaults.settings.levels == 50
    assert (await defaults.get_market_info()).tick_size == TICK


# ---------------------------------------------------------------------- determinism
def test_same_seed_same_market() -> None:
    a, ea = make_sim(seed=7)
    b, eb = make_sim(seed=7)
    c, ec = make_sim(seed=8)
    for sim, events in ((a, ea), (b, eb), (c, ec)):
        run_steps(sim, events, 300)
    assert fingerprint(ea) == fingerprint(eb)
    assert fingerprint(ea) != fingerprint(ec)


def test_default_seed_is_a_stable_hash_of_the_symbol() -> None:
    a, ea = make_sim("ETHUSDT")
    b, eb = make_sim("ETHUSDT", seed=zlib.crc32(b"ETHUSDT"))
    c, ec = make_sim("BTCUSDT")
    for sim, events in ((a, ea), (b, eb), (c, ec)):
        run_steps(sim, events, 100)
    assert fingerprint(ea) == fingerprint(eb)
    assert fingerprint(ea) != fingerprint(ec)


# ---------------------------------------------------------------------- the book
def test_first_step_publishes_a_realistic_snapshot() -> None:
    sim, events = make_sim(seed=1)
    sim.step()
    assert events.log[0] == ("book", 1)
    assert [status for status, _ in events.statuses] == [MarketStatus.OPEN]
    bids, asks = list(events.book.levels(Side.BUY)), list(events.book.levels(Side.SELL))
    assert len(bids) == len(asks) == 50
    for side in (bids, asks):
        gaps = {abs(a[0] - b[0]) for a, b in itertools.pairwise(side)}
        assert gaps <= {TICK, 2 * TICK, 3 * TICK}
        assert len({qty for _, qty in side}) > 10  # random sizes
    mid = events.book.mid
    assert mid is not None
    assert abs(mid - 30000) < 1


def test_sequence_increases_by_one_and_book_never_crosses() -> None:
    sim, events = make_sim(seed=3)
    run_steps(sim, events, 2000)
    assert events.sequences == list(range(1, len(events.sequences) + 1))
    assert events.book.sequence == events.sequences[-1]


def test_book_follows_the_mid() -> None:
    sim, events = make_sim(seed=5, volatility_bps=Decimal(20), levels=10)
    mids = []
    for _ in range(500):
        sim.step()
        check_book(events.book, 10)
        mids.append(events.book.mid)
    assert len(set(mids)) > 100
    assert max(m for m in mids if m) - min(m for m in mids if m) > 10


def test_prices_stay_positive_near_zero() -> None:
    sim, events = make_sim(seed=2, start_price=Decimal("0.05"), volatility_bps=Decimal(3000), levels=5)
    run_steps(sim, events, 1000)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    levels=st.integers(1, 12),
    volatility=st.decimals(0, 100, places=2),
)
def test_invariants_hold_for_any_parameters(seed: int, levels: int, volatility: Decimal) -> None:
    sim, events = make_sim(seed=seed, levels=levels, volatility_bps=volatility)
    run_steps(sim, events, 200)
    assert events.sequences == list(range(1, len(events.sequences) + 1))
    check_trades(events)


# ---------------------------------------------------------------------- trades
def check_trades(events: Recorder) -> None:
    ids = [int(t.id) for t in events.trades]
    assert ids == list(range(1, len(ids) + 1))
    for trade, bid, ask, level in events.trade_context:
        # at the touch of the book as it was, and no more than that level held
        assert trade.price == (ask if trade.taker_side is Side.BUY else bid)
        assert 0 < trade.quantity <= level


def test_trades_print_at_the_touch_and_take_the_level() -> None:
    sim, events = make_sim(seed=11)
    run_steps(sim, events, 1000)
    check_trades(events)
    assert len(events.trades) > 300  # often
    assert {t.taker_side for t in events.trades} == {Side.BUY, Side.SELL}
    log = events.log
    for i, (kind, trade) in enumerate(log):
        if kind != "trade":
            continue
        # the traded quantity leaves the level in the next update, then a ticker follows
        assert log[i + 1][0] == "book"
        assert log[i + 2][0] == "ticker"
        assert log[i + 2][1].last == trade.price
    # some trades take the whole touch level, so the price trades through levels
    swept = [t for t, _, _, level in events.trade_context if t.quantity == level]
    assert len(swept) > 30


def test_level_quantity_drops_by_the_traded_quantity() -> None:
    sim, events = make_sim(seed=12)
    sim.step()
    while not events.trades:
        sim.step()
    trade, _, _, before = events.trade_context[-1]
    side = Side.SELL if trade.taker_side is Side.BUY else Side.BUY
    assert events.book.quantity_at(side, trade.price) == before - trade.quantity


@pytest.mark.anyio
async def test_ticker_and_recent_trades() -> None:
    sim, events = make_sim(seed=4, max_recent_trade_list_size=20)
    run_steps(sim, events, 300)
    ticker = await sim.get_ticker()
    assert (ticker.bid, ticker.ask) == (events.book.best_bid, events.book.best_ask)
    assert ticker.last == events.trades[-1].price
    assert events.tickers[-1].last == events.trades[-1].price
    recent = await sim.get_recent_trades(5)
    assert recent == events.trades[-5:]
    assert await sim.get_recent_trades(1000) == events.trades[-20:]
    assert await sim.get_recent_trades(0) == []


@pytest.mark.anyio
async def test_orders_are_refused_and_there_are_no_balances() -> None:
    sim, _ = make_sim()
    request = OrderRequest.limit(Side.BUY, Decimal(1), Decimal(100))
    now = sim.context.clock.now()
    order = Order(
        "1", "c", "BTCUSDT", Side.BUY, OrderType.LIMIT, OrderStatus.PENDING, created=now, updated=now
    )
    calls = (sim.place_order(request), sim.cancel_order(order), sim.get_order(order), sim.get_open_orders())
    for call in calls:
        with pytest.raises(ExchangeError, match="real_client: sim"):
            await call
    assert await sim.get_balances() == {}


# ---------------------------------------------------------------------- lifecycle
@pytest.mark.anyio
async def test_connect_runs_the_feed_and_close_stops_it() -> None:
    sim, events = make_sim(seed=9, events_per_second=Decimal(2000))
    await sim.connect()
    await sim.connect()  # idempotent: still one feed
    await asyncio.sleep(0.05)
    assert [status for status, _ in events.statuses] == [MarketStatus.OPEN]
    assert len(events.sequences) > 5
    await sim.close()
    count = len(events.log)
    await asyncio.sleep(0.02)
    assert len(events.log) == count
    await sim.close()  # idempotent
    assert [status for status, _ in events.statuses] == [MarketStatus.OPEN, MarketStatus.CLOSED]
    # a reconnect starts from a fresh snapshot, with the sequence going on
    last = events.book.sequence
    events.book = OrderBook("BTCUSDT")
    await sim.connect()
    await asyncio.sleep(0.01)
    await sim.close()
    assert events.book.sequence is not None
    assert last is not None
    assert events.book.sequence > last
    assert [status for status, _ in events.statuses[-2:]] == [MarketStatus.OPEN, MarketStatus.CLOSED]


@pytest.mark.anyio
async def test_feed_paces_itself() -> None:
    sim, events = make_sim(seed=9, events_per_second=Decimal(100))
    await sim.connect()
    await asyncio.sleep(0.2)
    await sim.close()
    steps = sum(1 for kind, _ in events.log if kind == "book") - len(events.trades)
    assert 5 <= steps <= 40


def test_the_far_levels_rest_while_the_mid_moves_a_little() -> None:
    """A side keeps between three quarters of `levels` (less a level a trade swept) and `levels` levels, and
    its deepest level stays put in most steps (refilled only once a quarter is gone), where a book trimmed
    to exactly `levels` moves its far end with nearly every move of the mid."""
    sim, events = make_sim(seed=1, levels=20, volatility_bps=Decimal("0.01"))
    sim.step()
    book = events.book
    deepest, moved, counts = None, 0, set()
    for _ in range(2000):
        sim.step()
        bids, asks = list(book.levels(Side.BUY)), list(book.levels(Side.SELL))
        counts |= {len(bids), len(asks)}
        moved += (bids[-1], asks[-1]) != deepest
        deepest = bids[-1], asks[-1]
    assert min(counts) >= 14 and max(counts) == 20
    assert moved < 2000 * 0.6  # trimmed to exactly 20 levels, 87% of steps moved it


@pytest.mark.anyio
async def test_a_late_wake_produces_the_events_due_at_once_up_to_a_burst() -> None:
    """A loop stalled for 50 ms wakes a 1,000 events/s feed late: each of its wakes then produces the 5 ms of
    events already due (5 steps), not one step per wake, until it has caught up."""
    sim, events = make_sim(seed=9, events_per_second=Decimal(1000))

    def steps() -> int:
        return len(events.sequences) - len(events.trades)

    await sim.connect()
    try:
        await asyncio.sleep(0.02)
        time.sleep(0.05)  # noqa: ASYNC251 (the point: the loop is busy elsewhere)
        before = steps()
        while steps() == before:  # noqa: ASYNC110 (the sim's first wake after the stall)
            await asyncio.sleep(0)
        assert steps() - before == 5
        before = steps()
        while steps() == before:  # noqa: ASYNC110 (and its next one)
            await asyncio.sleep(0)
        assert steps() - before == 5
    finally:
        await sim.close()


class CountingClock(LiveClock):
    """LiveClock noting how many steps the feed made before each of its sleeps."""

    def __init__(self, events: Recorder) -> None:
        self.events = events
        self.steps: list[int] = []

    async def sleep(self, seconds: float) -> None:
        self.steps.append(len(self.events.sequences) - len(self.events.trades))
        await super().sleep(seconds)


@pytest.mark.anyio
async def test_a_fast_feed_wakes_every_two_milliseconds_with_the_events_due() -> None:
    """At 2,000 events/s the feed wakes about once per 2 ms (one timer per wake, not per event), producing
    the ~4 events due at each, and keeps its pace."""
    sim, events = make_sim(seed=9, events_per_second=Decimal(2000), volatility_bps=Decimal("0.01"))
    clock = sim.context.clock = CountingClock(events)
    await sim.connect()
    await asyncio.sleep(0.2)
    await sim.close()
    steps = clock.steps[-1]
    assert 200 <= steps <= 440  # 400 asked; fewer on a busy machine
    assert len(clock.steps) <= 110  # a wake per 2 ms at most (a wake per event: 400)
    assert steps / len(clock.steps) >= 3


@pytest.mark.parametrize("lot_size", ["0.00001", "0.25", "1", "5", "1E+1", "2.5E-3"])
def test_published_quantities_are_the_ladders_lots_for_any_lot_size(lot_size: str) -> None:
    """The frames' quantity texts (written from integers) are exactly lots x lot_size."""
    lot = Decimal(lot_size)
    sim, events = make_sim(seed=6, lot_size=lot, start_price=Decimal(100), min_notional=Decimal(0))
    run_steps(sim, events, 300)
    for side, ladder in ((Side.BUY, sim._bids), (Side.SELL, sim._asks)):
        for tick, lots in ladder.lots.items():
            assert events.book.quantity_at(side, sim.settings.tick_size * tick) == lots * lot
