"""Restart is recovery on Luno: an engine process quoting on the Luno simulator is killed with SIGKILL, its
bid fills while it is down, and the restarted engine books every fill once, keeps the ask that survived (no
doubled quotes) and its position equals the simulator's fills."""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from exchanges.luno import LunoSimulator, SimOrder
from support.restart import journaled, stop, until
from support.servers import moonship

from moonship_core import MarketStatus
from moonship_core.stores.sqlite import SqliteJournal
from moonship_core.trading.portfolio import Portfolio

from .conftest import KEY, PAIR, SECRET

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
D = Decimal
OTHER = "other"


def write_config(sim: LunoSimulator, tmp_path: Path, *, auto_start: bool = True) -> Path:
    config = {
        "moonship": {
            "engine": {"name": "luno-restarted"},
            "journal": {"path": str(tmp_path / "journal.sqlite")},
            "luno": {
                "api_key": KEY, "api_secret": SECRET, "rest_url": sim.rest_url, "ws_url": sim.ws_url,
                "silence_timeout": 3, "replay_window": 2, "request_timeout": 2,
            },
            "markets": {"xbt": {"client": "luno", "symbol": PAIR}},
            "strategies": {
                "q": {
                    "algo": "spread_quoter", "auto_start": auto_start, "markets": ["xbt"],
                    "trade_quantity": "0.01", "spread_bps": 20, "requote_bps": 1000,
                }
            },
        }
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def seed(sim: LunoSimulator) -> None:
    """Another user's book around a mid of 1 000 000: bid 997 000, ask 1 003 000 (our quotes go inside)."""
    other = sim.exchange.add_user(OTHER, "o", {"XBT": "100", "ZAR": "1000000000"})
    sim.exchange.post_limit(other, PAIR, "BID", "1", "997000.00")
    sim.exchange.post_limit(other, PAIR, "ASK", "1", "1003000.00")


def open_orders(sim: LunoSimulator) -> dict[str, SimOrder]:
    """Our open orders on the simulator by client order id."""
    return {
        o.client_order_id: o
        for o in sim.exchange.orders.values()
        if o.user.key_id == KEY and o.status != "COMPLETE"
    }


def take(sim: LunoSimulator, volume: str, price: Decimal) -> None:
    """Another user sells `volume` at `price` (our bid is the best bid: only it trades)."""
    sim.exchange.post_limit(sim.exchange.users[OTHER], PAIR, "ASK", volume, f"{price:.2f}")


async def test_kill_9_then_restart_books_every_fill_once(sim: LunoSimulator, tmp_path: Path) -> None:
    seed(sim)
    sim.exchange.users[KEY].maker_fee = D("0.001")  # our quotes pay 0.1 % as makers: fees must add up too
    config = write_config(sim, tmp_path)
    journal_file = tmp_path / "journal.sqlite"
    first = moonship("run", "-c", str(config))
    try:
        await until(lambda: len(open_orders(sim)) == 2, "two quotes", first)
        quotes = open_orders(sim)
        (bid,) = [o for o in quotes.values() if o.side == "BUY"]
        (ask,) = [o for o in quotes.values() if o.side == "SELL"]
        # half the bid fills while the engine runs (the user stream tells it) ...
        take(sim, "0.005", bid.limit_price)
        assert bid.base == D("0.005")
        coid = bid.client_order_id
        await until(lambda: journaled(journal_file, coid) == D("0.005"), "fill journaled", first)
    finally:
        await stop(first, signal.SIGKILL)
    assert first.process.returncode == -signal.SIGKILL

    # ... and the rest of it while the engine is down; the ask stays open
    take(sim, "0.005", bid.limit_price)
    assert bid.status == "COMPLETE" and bid.base == D("0.01") and ask.status != "COMPLETE"

    second = moonship("run", "-c", str(config))
    try:
        await until(lambda: len(open_orders(sim)) == 2, "quotes after the restart", second)
        await asyncio.sleep(1.0)  # time to double the quotes, if it were going to
        now = open_orders(sim)
        assert len(now) == 2 and ask.client_order_id in now  # the surviving ask is kept, one new bid joins it
        assert [o.side for o in now.values() if o.client_order_id != ask.client_order_id] == ["BUY"]
    finally:
        await stop(second, signal.SIGTERM)
    assert second.process.returncode == 0, second.output[-3000:]

    journal = SqliteJournal(journal_file)
    await journal.open()
    try:
        fills = await journal.fills()
        orders = {r.order.client_order_id: r for r in await journal.orders()}
    finally:
        await journal.close()
    booked = [f for f in fills if f.client_order_id == bid.client_order_id]
    assert sum(f.fill.quantity for f in booked) == D("0.01")  # each fill once: 0.005 live + 0.005 recovered
    assert {f.fill.price for f in booked} == {bid.limit_price}
    assert orders[bid.client_order_id].order.status.value == "FILLED"
    assert orders[bid.client_order_id].strategy == "q"
    trades = [t for t in sim.exchange.users[KEY].trades if t["order_id"] == bid.order_id]
    assert sum(D(t["base"]) for t in trades) == D("0.01")
    portfolio = Portfolio()
    portfolio.restore(reversed(fills))
    position = portfolio.position("q", "xbt")
    assert position.quantity == D("0.01")  # the simulator's fills, once
    # the fill made while down comes with its fee (from listtrades, or the user stream's replay, whichever
    # is first): the fees add up to the simulator's
    assert sum(f.fill.fee for f in booked) == sum(D(t["fee_base"]) for t in trades) == D("0.00001")
    assert position.fees == {"XBT": D("0.00001")}
    assert not [f for f in fills if f.client_order_id == ask.client_order_id]  # the ask never traded


async def test_restart_books_once_when_the_journal_has_fills_in_other_pieces(
    sim: LunoSimulator, tmp_path: Path
) -> None:
    """The journal may hold an order's fills in other pieces than Luno's trades (two trades the user stream
    missed, learnt as one from a look-up); a restart adds exactly what traded after them."""
    from moonship_core import OrderRequest, Side
    from moonship_core.contracts.stores import Stores
    from moonship_core.plugins import Plugins
    from moonship_core.stores.memory import MemoryBus, MemoryCache
    from moonship_core.trading.engine import TradingEngine

    seed(sim)
    config = write_config(sim, tmp_path, auto_start=False)
    journal_file = tmp_path / "journal.sqlite"

    def engine() -> TradingEngine:
        from moonship_core.config import load_config

        stores = Stores(MemoryCache(), MemoryBus(), SqliteJournal(journal_file))
        return TradingEngine.embedded(load_config(config), Plugins.load(), stores=stores, timeout=2)

    first = engine()
    await first.start()
    try:
        market = first.markets["xbt"]
        await market.open()
        await until(lambda: market.status is MarketStatus.OPEN, "the market stream synced")
        price = D("998000")
        order = await market.place_order(OrderRequest.limit(Side.BUY, D("0.01"), price), owner="q")
        (resting,) = open_orders(sim).values()
        sim.faults.user_stream_down = True
        sim.drop_user_streams()
        take(sim, "0.002", price)
        take(sim, "0.003", price)
        looked_up = await market.get_order(order)  # the two trades, learnt as one
        assert looked_up.filled_quantity == D("0.005") and len(looked_up.fills) == 1
    finally:
        await first.stop()
    take(sim, "0.004", price)
    sim.faults.user_stream_down = False
    await asyncio.sleep(2.5)  # past the user stream's replay window: the restart learns it over REST

    second = engine()
    await second.start()
    try:
        manager = second.orders
        await until(lambda: manager.portfolio.position("q", "xbt").quantity == D("0.009"), "fills booked")
        await asyncio.sleep(1.0)  # time to book something twice, if it were going to
        (live,) = manager.open_orders("xbt", "q")
        assert live.filled_quantity == D("0.009") and live.id == resting.order_id
    finally:
        await second.stop()
    journal = SqliteJournal(journal_file)
    await journal.open()
    try:
        fills = [f for f in await journal.fills() if f.client_order_id == order.client_order_id]
    finally:
        await journal.close()
    assert sum(f.fill.quantity for f in fills) == D("0.009") == resting.base
