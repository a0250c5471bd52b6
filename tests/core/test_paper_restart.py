"""A paper session carries on after kill -9: an engine process paper-trades spread_quoter over the sim with
the default balances and a SQLite (or Redis) journal, is killed with SIGKILL, and restarts. The account
(balances, open orders, ids) continues from its last journal batch, every paper fill is journaled once, and
the balances equal the start balances plus the journal's fills, before the kill and at the end."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.servers import moonship, redis

from moonship_core.codec import order_from_dict
from moonship_core.contracts.stores import FillRecord, Journal, OrderRecord
from moonship_core.model import Side
from moonship_core.stores.redis import RedisJournal
from moonship_core.stores.sqlite import SqliteJournal
from moonship_core.testing import MoonshipProcess, RedisServer
from moonship_core.trading.portfolio import Portfolio

pytestmark = pytest.mark.slow
D = Decimal
KEY = "paper:sim:default"
#: a fill as the balances see it: (side, price, quantity, fee)
Exec = tuple[Side, Decimal, Decimal, Decimal]
#: (client order id, trade id) -> its fill
Fills = dict[tuple[str, str], Exec]


ENGINE = "paper-restart"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = redis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


def write_config(tmp_path: Path, redis_url: str | None) -> Path:
    config: dict[str, Any] = {
        "moonship": {
            "engine": {"name": ENGINE},
            "journal": {"path": str(tmp_path / "journal.sqlite")},
            "markets": {
                "btc": {
                    # no balances: the defaults; makers pay no fee, so P/L and cash agree exactly
                    "client": "paper", "real_client": "sim", "symbol": "BTCUSDT", "seed": 11,
                    "events_per_second": 100, "volatility_bps": 1, "maker_fee_rate": 0,
                }
            },
            "strategies": {
                "q": {
                    "algo": "spread_quoter", "auto_start": True, "markets": ["btc"],
                    "trade_quantity": "0.01", "spread_bps": 1, "max_position": "0.05",
                }
            },
        }
    }
    if redis_url is not None:
        config["moonship"]["redis"] = {"url": redis_url}  # the journal goes to Redis with it
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class Reader:
    """Reads the journal while an engine writes it: the SQLite file directly (WAL: readers do not wait), or
    Redis through the RedisJournal."""

    def __init__(self, path: Path, redis_url: str | None) -> None:
        self.path = path
        self.redis_url = redis_url

    def journal(self) -> Journal:
        if self.redis_url is None:
            return SqliteJournal(self.path)
        return RedisJournal(self.redis_url, ENGINE)

    def _redis(self) -> tuple[list[FillRecord], Any]:
        async def go() -> tuple[list[FillRecord], Any]:
            journal = self.journal()
            await journal.open()
            try:
                return await journal.fills(), await journal.get(KEY)
            finally:
                await journal.close()

        return asyncio.run(go())

    def fills(self) -> Fills:
        if self.redis_url is not None:
            return {
                (r.client_order_id, r.fill.trade_id): (r.side, r.fill.price, r.fill.quantity, r.fill.fee)
                for r in self._redis()[0]
            }
        return fills_in(self.path)

    def account(self) -> dict[str, Any] | None:
        if self.redis_url is not None:
            state: dict[str, Any] | None = self._redis()[1]
            return state
        return account_in(self.path)

    async def final(self) -> tuple[list[FillRecord], list[OrderRecord], Any]:
        journal = self.journal()
        await journal.open()
        try:
            return await journal.fills(), await journal.orders(), await journal.get(KEY)
        finally:
            await journal.close()


def read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the journal while an engine writes it (WAL: readers do not wait)."""
    try:
        with sqlite3.connect(path) as db:
            return db.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def fills_in(path: Path) -> Fills:
    rows = read(path, "SELECT client_order_id, trade_id, data FROM fills")
    result: Fills = {}
    for coid, trade_id, data in rows:
        value = json.loads(data)
        fill = value["fill"]
        result[(coid, trade_id)] = (
            Side(value["side"]), D(fill["price"]), D(fill["quantity"]), D(fill["fee"])
        )
    return result


def account_in(path: Path) -> dict[str, Any] | None:
    rows = read(path, f"SELECT data FROM state WHERE key = '{KEY}'")
    return json.loads(rows[0][0]) if rows else None


def until(check: Callable[[], Any], what: str, engine: MoonshipProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline or engine.process.poll() is not None:
            raise AssertionError(f"{what} not reached within {timeout} s\n{engine.output[-4000:]}")
        time.sleep(0.05)


def totals(state: dict[str, Any]) -> dict[str, Decimal]:
    return {asset: D(b["free"]) + D(b["locked"]) for asset, b in state["balances"].items()}


def expected(start: dict[str, Decimal], fills: Iterable[Exec]) -> dict[str, Decimal]:
    """The balances `start` becomes after `fills` (fees in quote)."""
    base, quote = start["BTC"], start["USDT"]
    for side, price, quantity, fee in fills:
        sign = 1 if side is Side.BUY else -1
        base += sign * quantity
        quote -= sign * price * quantity + fee
    return {"BTC": base, "USDT": quote}


def fills_of_open_orders(state: dict[str, Any]) -> Fills:
    result: Fills = {}
    for entry in state["orders"]:
        order = order_from_dict(entry["order"])
        for f in order.fills:
            result[(order.client_order_id, f.trade_id)] = (order.side, f.price, f.quantity, f.fee)
    return result


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_kill_9_then_restart_carries_the_paper_account_on(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_server").url if backend == "redis" else None
    config = write_config(tmp_path, redis_url)
    journal = Reader(tmp_path / "journal.sqlite", redis_url)
    first = moonship("run", "-c", str(config))
    try:
        until(lambda: len(journal.fills()) >= 4, "four paper fills", first)
    finally:
        first.kill()  # SIGKILL
    assert first.process.returncode == -signal.SIGKILL
    assert first.count("start balances") == 1, first.output[-3000:]
    before = journal.account()
    assert before is not None
    fills_before = journal.fills()
    start = {asset: D(v) for asset, v in before["start"].items()}
    assert start["USDT"] == 10_000 and 0 < start["BTC"] < 1  # the defaults: BTC worth 10000 USDT at ~30000
    # the account is never behind the journal: it reflects every journaled fill, and any it holds beyond
    # them belong to its open orders (the restarted engine books those when it reconciles)
    held = fills_of_open_orders(before)
    extra = {key: fill for key, fill in held.items() if key not in fills_before}
    assert totals(before) == expected(start, [*fills_before.values(), *extra.values()])
    assert len(before["orders"]) <= 2  # one bid, one ask

    second = moonship("run", "-c", str(config))
    try:
        second.wait_for("paper account paper:sim:default: taken up from the journal", 30)
        assert second.count("start balances") == 0  # seeded once in the account's life
        restored = {e["order"]["client_order_id"] for e in before["orders"]}
        for _ in range(20):  # quotes are not doubled: the survivors are taken up, not quoted again
            state = journal.account()
            assert state is not None and len(state["orders"]) <= 2
            time.sleep(0.05)
        until(lambda: len(journal.fills()) >= len(fills_before) + len(extra) + 3, "three more fills", second)
        second.stop(signal.SIGTERM)
    finally:
        second.kill()
    assert second.process.returncode == 0, second.output[-3000:]
    assert "Traceback" not in first.output + second.output

    fills, orders, after = asyncio.run(journal.final())
    assert after is not None and after["start"] == before["start"]
    journaled: Fills = {
        (r.client_order_id, r.fill.trade_id): (r.side, r.fill.price, r.fill.quantity, r.fill.fee)
        for r in fills
    }
    assert len(journaled) == len(fills)  # each fill once
    assert len({trade_id for _, trade_id in journaled}) == len(journaled)  # fill ids never repeat
    assert fills_before.items() <= journaled.items() and extra.items() <= journaled.items()
    new = {key: fill for key, fill in journaled.items() if key not in fills_before and key not in extra}
    assert new  # the restarted session traded
    # balances continue: those journaled before the kill, moved by the fills made since
    assert totals(after) == expected(totals(before), new.values())
    assert totals(after) == expected(start, journaled.values())
    assert all(D(b["locked"]) == 0 for b in after["balances"].values())  # on_stop cancelled its quotes
    # no paper order lost or doubled: the survivors are the strategy's, closed by it; ids are unique
    by_coid = {r.order.client_order_id: r for r in orders}
    assert all(by_coid[coid].strategy == "q" and by_coid[coid].order.status.is_final for coid in restored)
    assert after["orders"] == [] and not [r for r in orders if not r.order.status.is_final]
    ids = [r.order.id for r in orders if r.order.id]
    assert len(ids) == len(set(ids))
    assert after["order_seq"] >= before["order_seq"] + 1
    # positions and P/L continue: rebuilt from the journal they match the account's change
    portfolio = Portfolio()
    portfolio.restore(reversed(fills))
    position = portfolio.position("q", "btc")
    change = {asset: totals(after)[asset] - start[asset] for asset in start}
    assert position.quantity == change["BTC"]
    cash = position.realized - position.average_cost * position.quantity  # exact up to Decimal's 28 digits
    assert abs(cash - change["USDT"]) < D("1e-12")
