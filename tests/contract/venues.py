"""The venues of the contract suite: each a simulator on real sockets and what the suite drives it with (the
engine config of one market "m", liquidity, a nudge, the exchange's view, its faults)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import moonship_binance.plugin
import moonship_luno.plugin
import moonship_valr.plugin
from exchanges import kit
from exchanges.binance import KEY as BINANCE_KEY
from exchanges.binance import BinanceSim
from exchanges.luno import LunoSimulator
from exchanges.valr import Participants, SimServer, ValrSimulator

D = Decimal


@dataclass
class Venue:
    name: str
    #: the engine config below `moonship`, without strategies: one market "m" and the venue's section
    moonship: dict[str, Any]
    plugins: tuple[object, ...]
    #: an order quantity the venue accepts, a bid price that rests well below the touch, a quantity more
    #: than the account can pay for at that price
    size: Decimal
    far_bid: Decimal
    huge: Decimal
    #: a book update, so the strategy gets a callback
    nudge: Callable[[], None]
    #: another participant sells until trades print through `price`
    sell_through: Callable[[Decimal], None]
    #: our orders at the exchange with this client order id
    at_exchange: Callable[[str], list[Any]]
    #: the exchange's best bid
    best_bid: Callable[[], Decimal | None]
    #: every socket of the venue dropped
    drop: Callable[[], Awaitable[None]]
    #: the sockets open at the venue
    connections: Callable[[], int]
    #: the venue's fault switches; None: paper (its orders never reach an exchange)
    faults: kit.Faults | None = None
    #: moves the exchange's clock by this many ms; None: the venue signs no timestamps
    skew: Callable[[int], None] | None = None
    #: the market feed stalls (its socket stays open, nothing more arrives on it)
    go_silent: Callable[[], None] | None = None
    #: sets the venue's silence timeout (seconds) in `moonship`, before the engine is built; None: the venue's
    #: silent-feed detection is not on the venue toolkit yet
    silence_timeout: Callable[[float], None] | None = None


def _binance_section(sim: BinanceSim) -> dict[str, Any]:
    return sim.settings(request_timeout=2.0, reconnect_max_delay=0.3)


def _binance_common(sim: BinanceSim) -> dict[str, Any]:
    for i in range(1, 11):
        sim.exchange.set_level("BTCUSDT", "b", f"{30000 - i}.00", "1")
        sim.exchange.set_level("BTCUSDT", "a", f"{30000 + i}.00", "1")
    nudges = iter(range(1, 1_000_000))

    def nudge() -> None:
        sim.exchange.set_level("BTCUSDT", "b", "28000.00", str(next(nudges) % 7 + 1))

    async def drop() -> None:
        sim.drop_connections()

    def best_bid() -> Decimal | None:
        return sim.exchange.symbol("BTCUSDT").bids.best()

    return {
        "nudge": nudge,
        "drop": drop,
        "connections": lambda: len(sim.conns),
        "best_bid": best_bid,
        "go_silent": lambda: sim.go_silent("stream"),
    }


@asynccontextmanager
async def binance() -> AsyncIterator[Venue]:
    async with BinanceSim() as sim:
        section = _binance_section(sim)

        def sell_through(price: Decimal) -> None:
            sim.exchange.take("BTCUSDT", "SELL", D(100), price)

        def skew(ms: int) -> None:
            sim.exchange.clock_offset_ms = ms

        yield Venue(
            "binance",
            {"markets": {"m": {"client": "binance", "symbol": "BTCUSDT"}}, "binance": section},
            (moonship_binance.plugin,),
            D("0.01"),
            D("29500"),
            D("100"),
            sell_through=sell_through,
            at_exchange=lambda coid: [
                o for o in sim.exchange.accounts[BINANCE_KEY].orders.values() if o.coid == coid
            ],
            faults=sim.faults,
            skew=skew,
            silence_timeout=lambda seconds: section.update(silence_timeout=seconds),
            **_binance_common(sim),
        )


@asynccontextmanager
async def paper() -> AsyncIterator[Venue]:
    """Paper trading over Binance's market data."""
    async with BinanceSim() as sim:
        section = _binance_section(sim)

        def sell_through(price: Decimal) -> None:
            below = price - 1
            sim.exchange.set_level("BTCUSDT", "b", below, "1")
            sim.exchange.take("BTCUSDT", "SELL", D(100), below)

        market = {
            "client": "paper", "real_client": "binance", "symbol": "BTCUSDT",
            "balances": {"USDT": "100000", "BTC": "1"},
        }
        yield Venue(
            "paper",
            {"markets": {"m": market}, "binance": section},
            (moonship_binance.plugin,),
            D("0.01"),
            D("29500"),
            D("100"),
            sell_through=sell_through,
            at_exchange=lambda coid: [],
            silence_timeout=lambda seconds: section.update(silence_timeout=seconds),
            **_binance_common(sim),
        )


LUNO_KEY, LUNO_SECRET, PAIR = "sim-luno-keyid", "sim-luno-secret", "XBTZAR"


@asynccontextmanager
async def luno() -> AsyncIterator[Venue]:
    async with LunoSimulator(keepalive=0.2, replay_window=2.0) as sim:
        exchange = sim.exchange
        exchange.add_market(PAIR, "XBT", "ZAR", price_scale=2, volume_scale=4)
        exchange.add_user(LUNO_KEY, LUNO_SECRET, {"XBT": "2", "ZAR": "2000000"})
        other = exchange.add_user("other", "o", {"XBT": "1000", "ZAR": "1000000000"})
        seller = exchange.add_user("seller", "s", {"XBT": "1000", "ZAR": "0"})
        exchange.post_limit(other, PAIR, "BID", "1", "990000.00")
        exchange.post_limit(other, PAIR, "ASK", "1", "1010000.00")

        def nudge() -> None:
            exchange.post_limit(other, PAIR, "BID", "0.001", "500000.00")

        def sell_through(price: Decimal) -> None:
            exchange.post_limit(seller, PAIR, "ASK", "100", str(price))

        async def drop() -> None:
            sim.drop_market_streams()
            sim.drop_user_streams()

        section = {
            "api_key": LUNO_KEY, "api_secret": LUNO_SECRET, "rest_url": sim.rest_url, "ws_url": sim.ws_url,
            "silence_timeout": 3, "replay_window": 2, "request_timeout": 2,
        }
        yield Venue(
            "luno",
            {"markets": {"m": {"client": "luno", "symbol": PAIR}}, "luno": section},
            (moonship_luno.plugin,),
            D("0.01"),
            D("980000"),
            D("100"),
            nudge=nudge,
            sell_through=sell_through,
            at_exchange=lambda coid: [o for o in exchange.orders.values() if o.client_order_id == coid],
            best_bid=lambda: exchange.market(PAIR).best("BUY"),
            drop=drop,
            connections=lambda: sum(len(c) for c in (*sim.market_conns.values(), *sim.user_conns.values())),
            faults=sim.faults,
            go_silent=lambda: sim.go_silent(PAIR),
            silence_timeout=lambda seconds: section.update(silence_timeout=seconds),
        )


VALR_KEY = "4f5bdd0b1b4ec0e4a3e0b7b1f1d6d1c8e0a9d0c2b6f7a8e9d0c1b2a3f4e5d6c7"
VALR_SECRET = "sim-valr-secret-0001"
MID = D(1_000_000)


@asynccontextmanager
async def valr() -> AsyncIterator[Venue]:
    sim = ValrSimulator()
    sim.add_key(VALR_KEY, VALR_SECRET)
    sim.fund(VALR_KEY, "ZAR", "1000000")
    sim.fund(VALR_KEY, "BTC", "10")
    async with SimServer(sim) as server:
        house = Participants(sim.exchange, "BTCZAR", mid=MID)
        house.seed_book(10)

        def nudge() -> None:
            far = MID / 2  # far below our bids: never ahead of them
            sim.exchange.place(house.account, "BTCZAR", "buy", kind="limit", quantity=D("0.001"), price=far)

        def sell_through(price: Decimal) -> None:
            sim.exchange.place(house.account, "BTCZAR", "sell", kind="limit", quantity=D(100), price=price)

        def skew(ms: int) -> None:
            sim.clock_skew_ms = ms

        section = {
            "api_key": VALR_KEY, "api_secret": VALR_SECRET,
            "rest_url": server.rest_url, "ws_url": server.ws_url,
            "fill_wait": 0.3, "cancel_wait": 1.0, "reconnect_max_delay": 0.5, "request_timeout": 2.0,
        }
        yield Venue(
            "valr",
            {"markets": {"m": {"client": "valr", "symbol": "BTCZAR"}}, "valr": section},
            (moonship_valr.plugin,),
            D("0.01"),
            D("990000"),
            D("100"),
            nudge=nudge,
            sell_through=sell_through,
            at_exchange=lambda coid: [o for o in sim.exchange.orders.values() if o.customer_order_id == coid],
            best_bid=lambda: sim.exchange.books["BTCZAR"].bids.best(),
            drop=sim.drop_connections,
            connections=lambda: len(sim.trade_conns) + len(sim.account_conns),
            go_silent=sim.go_silent,
            faults=sim.faults,
            skew=skew,
            silence_timeout=lambda seconds: section.update(silence_timeout=seconds),
        )


VENUES: dict[str, Callable[[], AbstractAsyncContextManager[Venue]]] = {
    "binance": binance,
    "luno": luno,
    "valr": valr,
    "paper": paper,
}
