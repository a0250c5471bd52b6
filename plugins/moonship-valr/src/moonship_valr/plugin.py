"""Registers the `valr` market client."""

from __future__ import annotations

from moonship_core import MarketClient, hookimpl

from .client import ValrClient


@hookimpl
def moonship_market_clients() -> dict[str, type[MarketClient]]:
    return {"valr": ValrClient}
