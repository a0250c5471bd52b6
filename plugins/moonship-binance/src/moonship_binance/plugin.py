"""Moonship plugin entry point: registers the `binance` market client."""

from __future__ import annotations

from moonship_core import MarketClient, hookimpl

from .client import BinanceClient


@hookimpl
def moonship_market_clients() -> dict[str, type[MarketClient]]:
    return {"binance": BinanceClient}
