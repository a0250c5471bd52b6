"""The `luno` market client for Moonship's plugin registry (imported only when a market uses it)."""

from __future__ import annotations

from moonship_core import hookimpl


@hookimpl
def moonship_market_clients() -> dict[str, str]:
    return {"luno": "moonship_luno.client:LunoClient"}
