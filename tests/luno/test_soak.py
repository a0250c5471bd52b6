"""A busy Luno for a while, with gaps, malformed frames, silent feeds and dropped connections injected:
the client's order-level book, and the L2 book aggregated from it, end equal to the simulator's.

The participants act at an accelerated rate (default 100 actions/s for 30 s: thousands of updates, several
minutes of a real Luno market); LUNO_SOAK_SECONDS and LUNO_SOAK_RATE change it.
"""

from __future__ import annotations

import asyncio
import os
import random
from decimal import Decimal

import pytest
from exchanges.luno import LunoSimulator, Participants
from moonship_luno.client import LunoClient

from moonship_core import MarketStatus, Side
from moonship_core.testing import RecordingEvents, until

from .conftest import PAIR, make_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SECONDS = float(os.environ.get("LUNO_SOAK_SECONDS", "30"))
RATE = float(os.environ.get("LUNO_SOAK_RATE", "100"))
CHECK_EVERY = 3.0
FAULTS = ("gap", "malformed", "stale", "drop")


def l3(client: LunoClient) -> dict[Side, list[tuple[str, Decimal, Decimal]]]:
    olb = client.order_level_book
    assert olb is not None
    return {side: [(o.id, o.price, o.volume) for o in olb.orders(side)] for side in (Side.BUY, Side.SELL)}


def sim_l3(sim: LunoSimulator) -> dict[Side, list[tuple[str, Decimal, Decimal]]]:
    market = sim.exchange.markets[PAIR]
    return {
        side: [(o.order_id, o.limit_price, o.remaining) for o in market.orders(name)]
        for side, name in ((Side.BUY, "BUY"), (Side.SELL, "SELL"))
    }


async def check_equal(sim: LunoSimulator, client: LunoClient, events: RecordingEvents) -> None:
    """With the participants paused: once the client has caught up, both books are the simulator's."""
    market = sim.exchange.markets[PAIR]
    await until(
        lambda: events.status_now is MarketStatus.OPEN and events.book.sequence == market.sequence,
        timeout=10, what=f"client at sequence {market.sequence}",
    )
    assert list(events.book.levels(Side.BUY)) == market.levels("BUY")
    assert list(events.book.levels(Side.SELL)) == market.levels("SELL")
    assert l3(client) == sim_l3(sim)


async def test_l3_to_l2_book_equals_the_simulators_after_busy_trading_with_gaps(sim: LunoSimulator) -> None:
    crowd = Participants(sim.exchange, PAIR, rate=RATE, seed=21, max_orders=120)
    for _ in range(300):
        crowd.step()
    client, events = make_client(sim, silence_timeout=1.5)
    await client.get_market_info()
    await client.connect()
    stream = client.stream
    assert stream is not None
    rng = random.Random(4)
    loop = asyncio.get_running_loop()
    end = loop.time() + SECONDS
    injected: list[str] = []
    checks = 0
    try:
        await check_equal(sim, client, events)
        while loop.time() < end:
            crowd.start()
            # pacing, not synchronisation: let the market run for a while before and after each fault
            lead = rng.uniform(0.5, CHECK_EVERY - 0.5)
            await asyncio.sleep(lead)
            fault = FAULTS[len(injected) % len(FAULTS)]
            injected.append(fault)
            if fault == "gap":
                sim.skip_sequence(PAIR)
            elif fault == "malformed":
                sim.malformed_frame(PAIR)
            elif fault == "stale":
                sim.go_silent(PAIR)
            else:
                sim.drop_market_streams(PAIR)
            await asyncio.sleep(CHECK_EVERY - lead)
            await crowd.stop()
            await check_equal(sim, client, events)
            checks += 1
    finally:
        await crowd.stop()
        await client.close()
    market = sim.exchange.markets[PAIR]
    print(
        f"soak: {crowd.actions} actions, {market.sequence - 1000} updates, {len(market.trades)} trades, "
        f"{len(injected)} faults, {stream.snapshots} snapshots, {checks} equality checks"
    )
    assert stream.snapshots >= len(injected) + 1  # every fault cost a resync
    assert checks >= 2 and crowd.actions >= SECONDS * RATE / 2
