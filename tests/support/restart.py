"""Helpers of the restart tests: an engine subprocess on a simulator that runs in the test's own loop."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from .servers import MoonshipProcess


async def until(
    check: Callable[[], Any], what: str, engine: MoonshipProcess | None = None, timeout: float = 20.0
) -> None:
    """Poll without blocking the loop the simulator runs on; on failure, show the engine's last output."""
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    output = engine.output[-4000:] if engine is not None else ""
    raise AssertionError(f"{what} not reached within {timeout} s\n{output}")


async def stop(engine: MoonshipProcess, sig: int) -> None:
    """Send `sig` and wait for the process to end."""
    engine.process.send_signal(sig)
    await until(lambda: engine.process.poll() is not None, "engine exit")


def journaled(path: Path, client_order_id: str) -> Decimal:
    """The quantity a SQLite journal holds as filled for one order (read while the engine writes it)."""
    try:
        with sqlite3.connect(path) as db:
            query = "SELECT data FROM fills WHERE client_order_id = ?"
            rows = db.execute(query, (client_order_id,)).fetchall()
    except sqlite3.Error:
        return Decimal(0)
    return sum((Decimal(json.loads(data)["fill"]["quantity"]) for (data,) in rows), Decimal(0))
