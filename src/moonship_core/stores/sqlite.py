"""SqliteJournal: the journal in one SQLite file (WAL), the default for an engine without Redis.

Writes are queued by the trading path as they are (an order or a fill, no encoding) and written in batches
(BatchWriter): encoded and written in one transaction in a worker thread that hands the GIL back to the event
loop between records, so the event loop never waits on the disk nor on the encoding.
Tables: `orders` (latest state per client order id), `order_events`
(every state an order passed through), `fills` (unique per order and trade id) and `state` (small values).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ..codec import fill_from_dict, fill_to_dict, json_dumps, json_loads, order_from_dict, order_to_dict
from ..contracts.stores import FillRecord, Journal, OrderRecord
from ..model import Order, Side
from .batch import BatchWriter

logger = logging.getLogger("moonship.journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    strategy TEXT NOT NULL,
    market TEXT NOT NULL,
    status TEXT NOT NULL,
    open INTEGER NOT NULL,
    updated TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_update ON orders (updated);
CREATE TABLE IF NOT EXISTS order_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL,
    status TEXT NOT NULL,
    time TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL,
    trade_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    market TEXT NOT NULL,
    time TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (client_order_id, trade_id)
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, data TEXT NOT NULL);
"""

_UPSERT_ORDER = (
    "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (client_order_id) DO UPDATE SET "
    "status = excluded.status, open = excluded.open, updated = excluded.updated, data = excluded.data"
)
_ADD_EVENT = "INSERT INTO order_events (client_order_id, status, time, data) VALUES (?, ?, ?, ?)"
_ADD_FILL = (
    "INSERT OR IGNORE INTO fills (client_order_id, trade_id, strategy, market, time, data) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_PUT = "INSERT INTO state VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET data = excluded.data"
#: what is queued: ("order", strategy, market, Order), ("fill", FillRecord, None, None) or
#: ("state", key, encoded value, None)
_Item = tuple[str, Any, Any, Any]
T = TypeVar("T")


class SqliteJournal(Journal):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._io = asyncio.Lock()  # one worker-thread call on the connection at a time
        self._batches = asyncio.Lock()  # batches reach the file in the order they were queued
        self._writer: BatchWriter[_Item] = BatchWriter(self._write, f"journal {self.path}", logger)

    async def open(self) -> None:
        self._db = await asyncio.to_thread(self._connect)
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across a process crash
        db.executescript(_SCHEMA)
        return db

    async def close(self) -> None:
        if self._db is None:
            return
        try:
            await self._writer.stop()
        finally:
            db, self._db = self._db, None
            await self._in_thread(db.close)

    # ------------------------------------------------------------------ writes (queued)
    def record_order(self, strategy: str, market: str, order: Order) -> None:
        self._writer.add(("order", strategy, market, order))

    def record_fill(self, record: FillRecord) -> None:
        self._writer.add(("fill", record, None, None))

    def put(self, key: str, value: Any) -> None:
        self._writer.add(("state", key, json_dumps(value).decode(), None))  # encoded now: it may change

    async def flush(self) -> None:
        await self._writer.flush()

    async def _write(self, batch: list[_Item]) -> None:
        async with self._batches:
            if self._db is None:
                raise RuntimeError("the journal is not open")
            db = self._db
            await self._in_thread(lambda: _Rows(batch).execute(db))

    # ------------------------------------------------------------------ reads
    async def orders(
        self,
        *,
        strategy: str | None = None,
        open_only: bool = False,
        closed_only: bool = False,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[OrderRecord]:
        where, args = _filters(strategy, since, "updated")
        if open_only:
            where.append("open = 1")
        if closed_only:
            where.append("open = 0")
        rows = await self._read(
            "SELECT strategy, market, data FROM orders" + _where(where) + " ORDER BY updated DESC"
            + _limit(limit), args,
        )
        return [OrderRecord(s, m, order_from_dict(json_loads(d))) for s, m, d in rows]

    async def fills(
        self, *, strategy: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[FillRecord]:
        where, args = _filters(strategy, since, "time")
        rows = await self._read(
            "SELECT strategy, market, client_order_id, data FROM fills" + _where(where) + " ORDER BY seq DESC"
            + _limit(limit), args,
        )
        records = []
        for strat, market, coid, data in rows:
            value = json_loads(data)
            records.append(FillRecord(
                strat, market, coid, Side(value["side"]), fill_from_dict(value["fill"]), value["base"],
                value["quote"],
            ))
        return records

    async def get(self, key: str) -> Any | None:
        rows = await self._read("SELECT data FROM state WHERE key = ?", (key,))
        return json_loads(rows[0][0]) if rows else None

    async def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        await self.flush()  # read-your-writes
        if self._db is None:
            raise RuntimeError("the journal is not open")
        db = self._db
        return await self._in_thread(lambda: db.execute(sql, args).fetchall())

    async def _in_thread(self, call: Callable[[], T]) -> T:
        """`call` in a worker thread, one at a time; a cancelled caller still waits for it to end, so the
        connection is never used by two threads at once (nor closed under one)."""
        async with self._io:
            running = asyncio.ensure_future(asyncio.to_thread(call))
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                await asyncio.wait((running,))
                raise


class _Rows:
    """One batch's rows by statement, encoded from what was queued."""

    def __init__(self, batch: list[_Item]) -> None:
        self.orders: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.fills: list[tuple[Any, ...]] = []
        self.state: list[tuple[Any, ...]] = []
        for item in batch:
            time.sleep(0)  # hands the GIL to the event loop's thread if it waits (else it waits up to 5 ms)
            self.add(item)

    def add(self, item: _Item) -> None:
        kind, first, second, third = item
        if kind == "order":
            order: Order = third
            data = json_dumps(order_to_dict(order)).decode()
            updated = _sortable(order.updated)
            coid, status = order.client_order_id, order.status
            self.orders.append((coid, first, second, status.value, int(not status.is_final), updated, data))
            self.events.append((coid, status.value, updated, data))
        elif kind == "fill":
            record: FillRecord = first
            fill = record.fill
            data = json_dumps({
                "side": record.side.value, "base": record.base_asset, "quote": record.quote_asset,
                "fill": fill_to_dict(fill),
            }).decode()
            self.fills.append((
                record.client_order_id, fill.trade_id, record.strategy, record.market,
                _sortable(fill.timestamp), data,
            ))
        else:
            self.state.append((first, second))

    def execute(self, db: sqlite3.Connection) -> None:
        """Write every row in one transaction (in a worker thread)."""
        with db:
            db.execute("BEGIN")
            statements = (
                (_UPSERT_ORDER, self.orders), (_ADD_EVENT, self.events), (_ADD_FILL, self.fills),
                (_PUT, self.state),
            )
            for sql, rows in statements:
                if rows:
                    db.executemany(sql, rows)


def _filters(
    strategy: str | None, since: datetime | None, time_column: str
) -> tuple[list[str], tuple[Any, ...]]:
    where: list[str] = []
    args: list[Any] = []
    if strategy is not None:
        where.append("strategy = ?")
        args.append(strategy)
    if since is not None:
        where.append(f"{time_column} >= ?")
        args.append(_sortable(since))
    return where, tuple(args)


def _sortable(time: datetime) -> str:
    """A UTC time as fixed-width text, so that text order is time order."""
    return time.astimezone(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def _limit(limit: int | None) -> str:
    return f" LIMIT {int(limit)}" if limit is not None else ""
