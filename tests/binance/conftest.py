"""Fixtures: a running Binance simulator, and clients wired to recording market events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from exchanges.binance import BinanceSim
from moonship_binance.client import BinanceClient

from moonship_core import testing
from moonship_core.testing import RecordingEvents


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim() as running:
        seed_book(running)
        yield running


def seed_book(sim: BinanceSim, symbol: str = "BTCUSDT") -> None:
    """Anonymous liquidity: bids 29990..29999, asks 30001..30010, 1 BTC each."""
    for i in range(1, 11):
        sim.exchange.set_level(symbol, "b", f"{30000 - i}.00", "1")
        sim.exchange.set_level(symbol, "a", f"{30000 + i}.00", "1")


def make_client(
    settings: dict[str, Any],
    symbol: str = "BTCUSDT",
    *,
    shared: dict[str, Any] | None = None,
    market: dict[str, Any] | None = None,
    name: str = "btc",
) -> tuple[BinanceClient, RecordingEvents]:
    validated = BinanceClient.settings_model.model_validate(settings)  # type: ignore[union-attr]
    market = {"client": "binance", "symbol": symbol, **(market or {})}
    return testing.make_client(BinanceClient, market, validated, name=name, shared=shared)


def fast(sim: BinanceSim, **extra: Any) -> dict[str, Any]:
    """Settings for tests: the simulator's URLs and keys, short timeouts."""
    return sim.settings(**{"request_timeout": 2.0, "reconnect_max_delay": 0.3, **extra})
