"""Restart is recovery on VALR: an engine process quoting on the VALR simulator is killed with SIGKILL, its
bid fills while it is down, and the restarted engine books every fill once (with its fee), keeps the ask that
survived (no doubled quotes) and its position equals the simulator's fills."""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from exchanges.valr import ValrSimulator
from support.restart import journaled, stop, until
from support.servers import moonship

from moonship_core.stores.sqlite import SqliteJournal
from moonship_core.trading.portfolio import Portfolio

from .harness import API_KEY, SECRET, D, venue

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
HOUSE = "house-BTCZAR"


def write_config(rest_url: str, ws_url: str, tmp_path: Path) -> Path:
    config = {
        "moonship": {
            "engine": {"name": "valr-restarted"},
            "journal": {"path": str(tmp_path / "journal.sqlite")},
            "valr": {
                "api_key": API_KEY, "api_secret": SECRET, "rest_url": rest_url, "ws_url": ws_url,
                "fill_wait": 0.3, "cancel_wait": 1.0, "reconnect_max_delay": 0.5, "request_timeout": 2.0,
            },
            "markets": {"btc": {"client": "valr", "symbol": "BTCZAR"}},
            "strategies": {
                "q": {
                    "algo": "spread_quoter", "auto_start": True, "markets": ["btc"],
                    "trade_quantity": "0.01", "spread_bps": 20, "requote_bps": 1000,
                }
            },
        }
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def seed(sim: ValrSimulator) -> None:
    """The house's book around a mid of 1 000 000: bid 997 000, ask 1 003 000 (our quotes go inside)."""
    house = sim.exchange.account(HOUSE, house=True)
    sim.exchange.place(house, "BTCZAR", "buy", kind="limit", quantity=D(1), price=D(997_000))
    sim.exchange.place(house, "BTCZAR", "sell", kind="limit", quantity=D(1), price=D(1_003_000))


def take(sim: ValrSimulator, quantity: str, price: Decimal) -> None:
    """The house sells `quantity` at `price` (our bid is the best bid: only it trades)."""
    house = sim.exchange.account(HOUSE, house=True)
    sim.exchange.place(
        house, "BTCZAR", "sell", kind="limit", quantity=D(quantity), price=price, time_in_force="IOC"
    )


def open_orders(sim: ValrSimulator) -> dict[str, Any]:
    """Our open orders on the simulator by customer order id."""
    return {o.customer_order_id: o for o in sim.exchange.open_orders(sim.account(API_KEY))}


async def test_kill_9_then_restart_books_every_fill_once(tmp_path: Path) -> None:
    async with venue() as (sim, server):
        seed(sim)
        config = write_config(server.rest_url, server.ws_url, tmp_path)
        journal_file = tmp_path / "journal.sqlite"
        first = moonship("run", "-c", str(config))
        try:
            await until(lambda: len(open_orders(sim)) == 2, "two quotes", first)
            quotes = open_orders(sim)
            (bid,) = [o for o in quotes.values() if o.side == "buy"]
            (ask,) = [o for o in quotes.values() if o.side == "sell"]
            # half the bid fills while the engine runs (the account socket tells it) ...
            take(sim, "0.005", bid.price)
            assert bid.executed == D("0.005")
            coid = bid.customer_order_id
            await until(lambda: journaled(journal_file, coid) == D("0.005"), "fill journaled", first)
        finally:
            await stop(first, signal.SIGKILL)
        assert first.process.returncode == -signal.SIGKILL

        # ... and the rest of it while the engine is down; the ask stays open
        take(sim, "0.005", bid.price)
        assert bid.status == "Filled" and ask.is_open

        second = moonship("run", "-c", str(config), env={"PYTHONFAULTHANDLER": "1"})
        try:
            await until(lambda: len(open_orders(sim)) == 2, "quotes after the restart", second)
            await asyncio.sleep(1.0)  # time to double the quotes, if it were going to
            now = open_orders(sim)
            # the surviving ask is kept, one new bid joins it
            assert len(now) == 2 and ask.customer_order_id in now
            assert [o.side for c, o in now.items() if c != ask.customer_order_id] == ["buy"]
        finally:
            await stop(second, signal.SIGTERM)
        assert second.process.returncode == 0, second.output[-3000:]
        trades = [t for t in sim.exchange.account_trades[sim.account(API_KEY).name] if t.maker is bid]

    journal = SqliteJournal(journal_file)
    await journal.open()
    try:
        fills = await journal.fills()
        orders = {r.order.client_order_id: r for r in await journal.orders()}
    finally:
        await journal.close()
    booked = [f for f in fills if f.client_order_id == coid]
    assert sum(f.fill.quantity for f in booked) == D("0.01")  # each fill once: 0.005 live + 0.005 recovered
    assert {f.fill.price for f in booked} == {bid.price}
    assert orders[coid].order.status.value == "FILLED" and orders[coid].strategy == "q"
    assert sum(t.quantity for t in trades) == D("0.01")
    # every fill is VALR's trade, with its fee (a maker reward: negative), once
    assert sorted(f.fill.trade_id for f in booked) == sorted(t.id for t in trades)
    assert sum(f.fill.fee for f in booked) == sum(t.maker_fee for t in trades) < 0
    portfolio = Portfolio()
    portfolio.restore(reversed(fills))
    assert portfolio.position("q", "btc").quantity == D("0.01")  # the simulator's fills, once
    assert not [f for f in fills if f.client_order_id == ask.customer_order_id]  # the ask never traded
