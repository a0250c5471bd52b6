"""Fixtures for the Luno client tests: a started simulator, a recording MarketEvents, client factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from exchanges.luno import LunoSimulator
from moonship_luno.client import LunoClient, LunoSettings

from moonship_core import MarketStatus, Order, testing
from moonship_core.testing import RecordingEvents, until

KEY, SECRET = "sim-luno-keyid", "sim-luno-secret"
PAIR = "XBTZAR"


@pytest.fixture
async def sim() -> AsyncIterator[LunoSimulator]:
    async with LunoSimulator(keepalive=0.2, replay_window=2.0) as simulator:
        simulator.exchange.add_market(PAIR, "XBT", "ZAR", price_scale=2, volume_scale=4)
        simulator.exchange.add_user(KEY, SECRET, {"XBT": "2", "ZAR": "2000000"})
        yield simulator


def settings_for(sim: LunoSimulator, **overrides: Any) -> LunoSettings:
    values: dict[str, Any] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "rest_url": sim.rest_url,
        "ws_url": sim.ws_url,
        "silence_timeout": 3.0,
        "replay_window": 2.0,
        "request_timeout": 5.0,
    }
    return LunoSettings(**(values | overrides))


def make_client(
    sim: LunoSimulator,
    events: RecordingEvents | None = None,
    *,
    pair: str = PAIR,
    shared: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    **overrides: Any,
) -> tuple[LunoClient, RecordingEvents]:
    market = {"client": "luno", "symbol": pair, **(extra or {})}
    settings = settings_for(sim, **overrides)
    return testing.make_client(LunoClient, market, settings, name=pair.lower(), shared=shared, events=events)


async def started(sim: LunoSimulator, **overrides: Any) -> tuple[LunoClient, RecordingEvents]:
    """A client connected to both streams, its start-up reconciliation done."""
    client, events = make_client(sim, **overrides)
    await client.get_market_info()
    await client.connect()
    assert client.user_stream is not None
    await until(lambda: events.status_now is MarketStatus.OPEN, what="market stream")
    await until(client.user_stream.connected.is_set, what="user stream")
    await until(lambda: not client.reconciling, what="start-up reconciliation")
    return client, events


def latest(events: RecordingEvents, order: Order) -> Order:
    """The last update pushed for `order` (the order itself before any)."""
    return events.latest(order.client_order_id) or order
