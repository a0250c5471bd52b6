"""The journal contract on every backend, and the SQLite file's durability across a killed process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from support.servers import redis

from moonship_core import Fill, Order, OrderStatus, OrderType, Side
from moonship_core.contracts.stores import FillRecord, Journal
from moonship_core.stores.batch import BATCH_WINDOW
from moonship_core.stores.memory import MemoryJournal
from moonship_core.stores.redis import RedisJournal
from moonship_core.stores.sqlite import SqliteJournal
from moonship_core.testing import RedisServer, free_port

D = Decimal
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = redis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    made: Journal
    if request.param == "memory":
        made = MemoryJournal()
    elif request.param == "sqlite":
        made = SqliteJournal(tmp_path / "j" / "e.sqlite")  # the folder is created as needed
    else:
        made = RedisJournal(request.getfixturevalue("redis_server").url, f"e{free_port()}")
    await made.open()
    try:
        yield made
    finally:
        await made.close()


def order(coid: str, status: OrderStatus, minute: int, filled: str = "0") -> Order:
    at = T0 + timedelta(minutes=minute)
    return Order(
        "x" + coid, coid, "BTCUSDT", Side.BUY, OrderType.LIMIT, status, quantity=D("1"), price=D("100.5"),
        filled_quantity=D(filled), filled_quote_quantity=D(filled) * D("100.5"), created=T0, updated=at,
    )


def fill_record(coid: str, trade: str, minute: int, strategy: str = "s") -> FillRecord:
    at = T0 + timedelta(minutes=minute)
    fill = Fill(trade, D("100.5"), D("0.25"), D("0.0001"), "BTC", True, timestamp=at)
    return FillRecord(strategy, "btc", coid, Side.BUY, fill, "BTC", "USDT")


async def test_orders_keep_their_latest_state_newest_first(journal: Journal) -> None:
    journal.record_order("s", "btc", order("a", OrderStatus.PENDING, 1))
    journal.record_order("s", "btc", order("b", OrderStatus.PENDING, 2))
    journal.record_order("t", "eth", order("c", OrderStatus.PENDING, 3))
    journal.record_order("s", "btc", order("a", OrderStatus.FILLED, 4, filled="1"))
    records = await journal.orders()
    assert [(r.order.client_order_id, r.order.status) for r in records] == [
        ("a", OrderStatus.FILLED), ("c", OrderStatus.PENDING), ("b", OrderStatus.PENDING)
    ]
    assert records[0].order == order("a", OrderStatus.FILLED, 4, filled="1")  # exact round trip
    assert [r.order.client_order_id for r in await journal.orders(open_only=True)] == ["c", "b"]
    assert [r.order.client_order_id for r in await journal.orders(closed_only=True)] == ["a"]
    assert [(r.strategy, r.market) for r in await journal.orders(strategy="t")] == [("t", "eth")]
    recent = await journal.orders(since=T0 + timedelta(minutes=3))
    assert [r.order.client_order_id for r in recent] == ["a", "c"]
    assert len(await journal.orders(limit=2)) == 2


async def test_a_fill_is_kept_once(journal: Journal) -> None:
    journal.record_fill(fill_record("a", "t1", 1))
    journal.record_fill(fill_record("a", "t1", 1))  # the exchange repeated it
    journal.record_fill(fill_record("a", "t2", 2))
    journal.record_fill(fill_record("b", "t1", 3, strategy="u"))  # another order's trade id 1
    fills = await journal.fills()
    assert [(f.client_order_id, f.fill.trade_id) for f in fills] == [("b", "t1"), ("a", "t2"), ("a", "t1")]
    assert fills[-1] == fill_record("a", "t1", 1)
    recent = await journal.fills(strategy="s", since=T0 + timedelta(minutes=2))
    assert [f.fill.trade_id for f in recent] == ["t2"]


async def test_state_values(journal: Journal) -> None:
    assert await journal.get("paper:binance") is None
    journal.put("paper:binance", {"free": {"USDT": D("10.5")}})
    journal.put("paper:binance", {"free": {"USDT": D("11")}})
    assert await journal.get("paper:binance") == {"free": {"USDT": "11"}}


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_a_journal_survives_a_reopen(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    def make() -> Journal:
        if backend == "sqlite":
            return SqliteJournal(tmp_path / "e.sqlite")
        return RedisJournal(request.getfixturevalue("redis_server").url, "reopened")

    first = make()
    await first.open()
    first.record_order("s", "btc", order("a", OrderStatus.PENDING, 1))
    first.record_fill(fill_record("a", "t1", 1))
    await first.close()
    second = make()
    await second.open()
    try:
        assert [r.order.client_order_id for r in await second.orders(open_only=True)] == ["a"]
        assert len(await second.fills()) == 1
    finally:
        await second.close()


async def test_writes_wait_for_no_one(tmp_path: Path) -> None:
    """Recording is a queue append: it returns before anything reaches the disk."""
    journal = SqliteJournal(tmp_path / "e.sqlite")
    await journal.open()
    try:
        for i in range(1000):
            journal.record_order("s", "btc", order(f"o{i}", OrderStatus.PENDING, i))
        raw = await asyncio.to_thread(_count_rows, tmp_path / "e.sqlite")
        assert raw < 1000  # not written yet: the writer batches in the background
        await _until(lambda: asyncio.to_thread(_count_rows, tmp_path / "e.sqlite"), 1000)
    finally:
        await journal.close()


async def test_closing_during_a_write_writes_everything_once(tmp_path: Path) -> None:
    """close() while the background writer is inside a batch: that batch ends first (the connection is never
    used by two threads, nor closed under one) and nothing is written twice."""
    path = tmp_path / "e.sqlite"
    journal = SqliteJournal(path)
    await journal.open()
    for i in range(20000):
        journal.record_order("s", "btc", order(f"o{i}", OrderStatus.PENDING, i))
    await asyncio.sleep(BATCH_WINDOW + 0.02)  # the writer has taken the batch and is writing it
    await journal.close()
    events = await asyncio.to_thread(_count_rows, path, "order_events")
    assert events == 20000


def _count_rows(path: Path, table: str = "orders") -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def _until(read: Callable[[], object], expected: int) -> None:
    for _ in range(200):
        if await read() == expected:  # type: ignore[misc]
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never reached {expected}")


def test_kill_9_loses_nothing_that_was_written(tmp_path: Path) -> None:
    """A process killed with SIGKILL right after its writer flushed: every row is there on reopen."""
    path = tmp_path / "e.sqlite"
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]
        from test_journal import order, fill_record
        from moonship_core import OrderStatus
        from moonship_core.stores.sqlite import SqliteJournal

        async def main():
            journal = SqliteJournal({str(path)!r})
            await journal.open()
            for i in range(200):
                journal.record_order("s", "btc", order(f"o{{i}}", OrderStatus.PENDING, i))
                journal.record_fill(fill_record(f"o{{i}}", "t", i))
            await journal.flush()
            print("flushed", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "flushed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    async def check() -> None:
        journal = SqliteJournal(path)
        await journal.open()
        try:
            assert len(await journal.orders()) == 200 and len(await journal.fills()) == 200
        finally:
            await journal.close()

    asyncio.run(check())
