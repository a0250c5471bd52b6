"""`until`: wait for a condition without blocking the loop the servers under test run on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def until(
    check: Callable[[], Any],
    timeout: float = 5.0,
    what: str = "condition",
    detail: Callable[[], str] | None = None,
) -> None:
    """Poll `check()` until it is truthy; past `timeout` seconds fail naming `what`, with `detail()` (e.g. a
    process's last output) appended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            shown = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"{what} not reached within {timeout} s{shown}")
        await asyncio.sleep(0.005)
