"""Registers the `valr` market client (imported only when a market uses it)."""

from __future__ import annotations

from moonship_core import hookimpl


@hookimpl
def moonship_market_clients() -> dict[str, str]:
    return {"valr": "moonship_valr.client:ValrClient"}
