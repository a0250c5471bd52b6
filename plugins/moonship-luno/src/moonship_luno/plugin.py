"""The `luno` market client for Moonship's plugin registry."""

from __future__ import annotations

from moonship_core import MarketClient, hookimpl

from .client import LunoClient


@hookimpl
def moonship_market_clients() -> dict[str, type[MarketClient]]:
    return {"luno": LunoClient}
