"""A one-minute run against a busy simulated VALR with faults injected throughout: afterwards the client's
book equals the simulator's, every order's state and fills agree with VALR's, and so do the balances."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Awaitable, Callable

import pytest
from exchanges.valr import Participants, ValrSimulator

from moonship_core import (
    MarketStatus,
    MoonshipError,
    OrderRequest,
    OrderStatus,
    Side,
    TimeInForce,
)
from moonship_core.testing import until
from moonship_core.trading.market import Market

from .harness import API_KEY, OWNER, D, Recorder, book_levels, make_market, sim_levels, venue

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SECONDS = float(os.environ.get("VALR_SOAK_SECONDS", "60"))
FINAL = {
    "Filled": {OrderStatus.FILLED},
    "Cancelled": {OrderStatus.CANCELLED, OrderStatus.CANCELLED_AND_PARTIALLY_FILLED},
    "Expired": {OrderStatus.EXPIRED, OrderStatus.CANCELLED_AND_PARTIALLY_FILLED},
    "Failed": {OrderStatus.REJECTED},
}


async def _faults(sim: ValrSimulator, rng: random.Random, stop: asyncio.Event, log: list[str]) -> None:
    """One fault every couple of seconds, each undone before the next."""

    async def pause(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def flag(name: str, seconds: float) -> None:
        setattr(sim.faults, name, True)
        await pause(seconds)
        setattr(sim.faults, name, False)

    async def drop() -> None:
        await sim.drop_connections()

    async def refuse() -> None:
        sim.faults.refuse_connections = True
        await sim.drop_connections()
        await pause(1.0)
        sim.faults.refuse_connections = False

    async def malformed() -> None:
        sim.send_malformed()

    async def once(name: str) -> None:
        setattr(sim.faults, name, 1)

    actions: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("drop connections", drop),
        ("refuse reconnects", refuse),
        ("no pongs", lambda: flag("ignore_pings", 2.5)),
        ("stale feed", lambda: flag("stale_feed", 2.5)),
        ("malformed frames", malformed),
        ("5xx after executing", lambda: once("fail_after_execute")),
        ("stale timestamp", lambda: once("stale_timestamp_next")),
        ("429", lambda: once("rate_limited")),
        ("account trades lost", lambda: flag("drop_account_trades", 2.0)),
    ]
    rng.shuffle(actions)
    i = 0
    while not stop.is_set():
        name, action = actions[i % len(actions)]
        i += 1
        log.append(name)
        await action()
        await pause(rng.uniform(1.5, 3.0))


async def _trade(
    market: Market,
    rec: Recorder,
    house: Participants,
    rng: random.Random,
    stop: asyncio.Event,
    errors: list[str],
) -> None:
    """A strategy that quotes, takes and cancels at random."""
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.05, 0.25))
        mid = house.mid
        roll = rng.random()
        try:
            if roll < 0.45:
                side = rng.choice((Side.BUY, Side.SELL))
                offset = D(rng.randint(1, 15))
                price = mid - offset if side is Side.BUY else mid + offset
                await market.place_order(
                    OrderRequest.limit(side, D("0.001") * rng.randint(1, 30), price, post_only=True),
                    owner=OWNER,
                )
            elif roll < 0.6:
                side = rng.choice((Side.BUY, Side.SELL))
                price = mid + 3 if side is Side.BUY else mid - 3
                tif = rng.choice((TimeInForce.IOC, TimeInForce.FOK))
                await market.place_order(
                    OrderRequest.limit(side, D("0.002") * rng.randint(1, 20), price, time_in_force=tif),
                    owner=OWNER,
                )
            elif roll < 0.7:
                side = rng.choice((Side.BUY, Side.SELL))
                if rng.random() < 0.5:
                    await market.place_order(
                        OrderRequest.market(side, quantity=D("0.0005") * rng.randint(1, 9)), owner=OWNER
                    )
                else:
                    await market.place_order(
                        OrderRequest.market(side, quote_quantity=D(rng.randint(20, 900))), owner=OWNER
                    )
            else:
                mine = market.open_orders(OWNER)
                if mine:
                    await market.cancel_order(rng.choice(mine))
        except MoonshipError as exc:  # post-only crossings, lost answers, 429s, unknown-at-cancel...
            errors.append(type(exc).__name__)


async def test_one_minute_with_faults_ends_in_agreement() -> None:
    rng = random.Random(int(os.environ.get("VALR_SOAK_SEED", "2024")))
    async with venue({"ZAR": "100000000", "BTC": "1000"}) as (sim, server):
        house = Participants(sim.exchange, "BTCZAR", mid=D(1_000_000), rate=150, seed=11)
        house.seed_book(20)
        market, rec = make_market(
            server,
            ping_interval=0.5,
            pong_timeout=1.2,
            silence_timeout=1.5,
            cancel_wait=0.5,
            reconnect_max_delay=0.5,
        )
        await market.open()
        stop = asyncio.Event()
        faults: list[str] = []
        errors: list[str] = []
        try:
            await until(lambda: market.status is MarketStatus.OPEN, what="open")
            async with house:
                tasks = [
                    asyncio.create_task(_faults(sim, rng, stop, faults)),
                    asyncio.create_task(_trade(market, rec, house, rng, stop, errors)),
                ]
                await asyncio.sleep(SECONDS)  # the run itself: a fixed stretch of activity
                stop.set()
                await asyncio.gather(*tasks)
            # the feed is quiet and every fault undone: everything must converge
            sim.faults.__init__()  # type: ignore[misc]
            sim.publish_book("BTCZAR")
            await until(lambda: market.status is MarketStatus.OPEN, timeout=15, what="open at the end")
            await until(lambda: book_levels(market) == sim_levels(sim), timeout=15, what="books equal")

            account = sim.account(API_KEY)
            ours = {o.customer_order_id: o for o in sim.exchange.orders.values() if o.account is account}

            def agreed() -> list[str]:
                problems = []
                latest = {o.client_order_id: o for o in rec.orders}
                for coid, wire in ours.items():
                    mine = latest.get(coid)
                    if mine is None:
                        problems.append(f"{coid}: never reported")
                    elif mine.filled_quantity != wire.executed:
                        problems.append(f"{coid}: filled {mine.filled_quantity} vs {wire.executed}")
                    elif wire.is_open == mine.status.is_final or (
                        not wire.is_open and mine.status not in FINAL[wire.status]
                    ):
                        problems.append(f"{coid}: {mine.status} vs {wire.status}")
                    elif sum((f.fee for f in mine.fills), D(0)) != wire.fee:
                        problems.append(f"{coid}: fees differ")
                return problems

            await until(lambda: not agreed(), timeout=15, what="order states agree")
            open_ids = {o.customer_order_id for o in sim.exchange.open_orders(account)}
            assert {o.client_order_id for o in market.open_orders()} == open_ids
            await until(
                lambda: all(
                    market.balances[c].free == account.available[c]
                    and market.balances[c].locked == account.reserved[c]
                    for c in ("BTC", "ZAR")
                ),
                timeout=10,
                what="balances agree",
            )
        finally:
            stop.set()
            await market.close()
        filled = sum(1 for o in ours.values() if o.executed)
        print(
            f"\nVALR soak {SECONDS:.0f} s: {house.actions} participant actions,"
            f" {len(sim.exchange.trades['BTCZAR'])} recent trades,"
            f" {len(ours)} of our orders ({filled} with fills), {rec.books} book events,"
            f" reconnects trade={sim.connections['trade'] - 1} account={sim.connections['account'] - 1},"
            f" faults={len(faults)}, expected errors={sorted(set(errors))}"
        )
        assert len(ours) > 50 and filled > 10 and len(faults) >= min(9, int(SECONDS / 4))
        assert sim.connections["trade"] > 2
        await until(lambda: not sim.trade_conns and not sim.account_conns, what="both sockets closed")
