"""Restart is recovery: an engine process quoting on the Binance simulator is killed with SIGKILL, its orders
fill while it is down, and the restarted engine books every fill once, keeps the quote that survived (no
doubled quotes) and its position equals the simulator's fills; with the journal in SQLite and in Redis."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from exchanges.binance import KEY, BinanceSim
from support.restart import stop, until
from support.servers import moonship, redis

from moonship_core.contracts.stores import Journal
from moonship_core.stores.redis import RedisJournal
from moonship_core.stores.sqlite import SqliteJournal
from moonship_core.trading.portfolio import Portfolio

from .conftest import fast, seed_book

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
D = Decimal


def write_config(sim: BinanceSim, tmp_path: Path, redis_url: str | None) -> Path:
    config: dict[str, Any] = {
        "moonship": {
            "engine": {"name": "restarted"},
            "journal": {"path": str(tmp_path / "journal.sqlite")},
            "markets": {"btc": {"client": "binance", "symbol": "BTCUSDT"}},
            "strategies": {
                "q": {
                    "algo": "spread_quoter", "auto_start": True, "markets": ["btc"],
                    "trade_quantity": "0.01", "spread_bps": 20, "requote_bps": 1000,
                }
            },
            "binance": fast(sim),
        }
    }
    if redis_url is not None:  # cache, bus and journal on Redis
        config["moonship"]["redis"] = {"url": redis_url}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def open_orders(sim: BinanceSim) -> dict[str, Any]:
    """Our open orders on the simulator by client order id."""
    return {o.coid: o for o in sim.exchange.accounts[KEY].orders.values() if o.is_open}


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The journal's home: the SQLite file (None), or a real redis-server's URL."""
    if request.param == "sqlite":
        yield None
        return
    server = redis()
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


def journal_of(tmp_path: Path, redis_url: str | None) -> Journal:
    if redis_url is None:
        return SqliteJournal(tmp_path / "journal.sqlite")
    return RedisJournal(redis_url, "restarted")


async def journaled(tmp_path: Path, redis_url: str | None, client_order_id: str) -> Decimal:
    """The quantity the journal holds as filled for one order (read while the engine writes it)."""
    journal = journal_of(tmp_path, redis_url)
    await journal.open()
    try:
        fills = await journal.fills()
    finally:
        await journal.close()
    return sum((f.fill.quantity for f in fills if f.client_order_id == client_order_id), D(0))


async def test_kill_9_then_restart_books_every_fill_once(
    sim: BinanceSim, tmp_path: Path, backend: str | None
) -> None:
    config = write_config(sim, tmp_path, backend)
    first = moonship("run", "-c", str(config))
    try:
        await until(lambda: len(open_orders(sim)) == 2, "two quotes", first)
        quotes = open_orders(sim)
        (bid,) = [o for o in quotes.values() if o.side == "BUY"]
        (ask,) = [o for o in quotes.values() if o.side == "SELL"]
        # half the bid fills while the engine runs (the user stream tells it) ...
        sim.exchange.take("BTCUSDT", "SELL", D(10) + D("0.005"), bid.price)
        await until(lambda: bid.executed == D("0.005"), "partial fill")
        for _ in range(200):
            if await journaled(tmp_path, backend, bid.coid) == D("0.005"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the fill never reached the journal")
    finally:
        await stop(first, signal.SIGKILL)
    assert first.process.returncode == -signal.SIGKILL

    # ... and the rest of it while the engine is down; the ask stays open
    sim.exchange.take("BTCUSDT", "SELL", D("0.005"), bid.price)
    assert bid.status == "FILLED" and ask.is_open
    seed_book(sim)  # the takers emptied the bids: a two-sided book again, so the quoter has a mid

    second = moonship("run", "-c", str(config))
    try:
        await until(lambda: len(open_orders(sim)) == 2, "quotes after the restart", second)
        await asyncio.sleep(1.0)  # time to double the quotes, if it were going to
        now = open_orders(sim)
        assert len(now) == 2 and ask.coid in now  # the surviving ask is kept, one new bid joins it
        assert [o.side for o in now.values() if o.coid != ask.coid] == ["BUY"]
    finally:
        await stop(second, signal.SIGTERM)
    assert second.process.returncode == 0, second.output[-3000:]

    journal = journal_of(tmp_path, backend)
    await journal.open()
    try:
        fills = await journal.fills()
        orders = {r.order.client_order_id: r for r in await journal.orders()}
    finally:
        await journal.close()
    booked = [f for f in fills if f.client_order_id == bid.coid]
    assert sum(f.fill.quantity for f in booked) == D("0.01")  # each fill once: 0.005 live + 0.005 recovered
    assert {f.fill.price for f in booked} == {bid.price}
    assert orders[bid.coid].order.status.value == "FILLED" and orders[bid.coid].strategy == "q"
    trades = [t for t in sim.exchange.accounts[KEY].trades if t["orderId"] == bid.order_id]
    assert sum(D(t["qty"]) for t in trades) == D("0.01")
    portfolio = Portfolio()
    portfolio.restore(reversed(fills))
    assert portfolio.position("q", "btc").quantity == D("0.01")  # the simulator's fills, once
