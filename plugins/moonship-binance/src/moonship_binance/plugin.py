"""Moonship plugin entry point: registers the `binance` market client (imported when a market uses it)."""

from __future__ import annotations

from moonship_core import hookimpl


@hookimpl
def moonship_market_clients() -> dict[str, str]:
    return {"binance": "moonship_binance.client:BinanceClient"}
