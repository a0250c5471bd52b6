"""JSON for everything that crosses a process boundary (cache, bus, journal, API): Decimal as exact text,
UTC times as ISO-8601."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in the shared cache")


def json_dumps(value: Any) -> bytes:
    """JSON for the cache and the bus (Decimal as text, UTC times as ISO-8601)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


json_loads = orjson.loads
"""Parse JSON (decimals come back as text, as they were stored)."""
