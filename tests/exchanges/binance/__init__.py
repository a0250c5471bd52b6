"""Local Binance spot simulator: `BinanceSim` serves REST, market streams and the WebSocket API locally."""

from .engine import Exchange, SimError, SymbolSpec
from .server import KEY, MAKER_KEY, MAKER_SECRET, SECRET, BinanceSim, Faults

__all__ = [
    "KEY",
    "MAKER_KEY",
    "MAKER_SECRET",
    "SECRET",
    "BinanceSim",
    "Exchange",
    "Faults",
    "SimError",
    "SymbolSpec",
]
