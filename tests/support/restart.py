"""Helpers of the restart tests: an engine subprocess on a simulator that runs in the test's own loop."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from moonship_core import testing
from moonship_core.testing import MoonshipProcess


async def until(
    check: Callable[[], Any], what: str, engine: MoonshipProcess | None = None, timeout: float = 20.0
) -> None:
    """The kit's `until`, showing the engine's last output on failure."""
    await testing.until(check, timeout, what, (lambda: engine.output[-4000:]) if engine is not None else None)


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
