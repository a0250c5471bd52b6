"""Moonship market client for Binance spot: REST, combined market streams, WebSocket API user stream."""

from __future__ import annotations

from .client import BinanceClient, BinanceSettings

__all__ = ["BinanceClient", "BinanceSettings"]
