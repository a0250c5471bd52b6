"""Keepalive, stale-feed detection, reconnects and malformed frames, driven by the simulator's faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from exchanges.valr import Participants, SimServer, ValrSimulator

from moonship_core import MarketStatus
from moonship_core.testing import until
from moonship_core.trading.market import Market

from .harness import D, Recorder, book_levels, client_of, make_market, sim_levels, venue

pytestmark = pytest.mark.anyio

FAST = {"ping_interval": 0.1, "pong_timeout": 0.4, "silence_timeout": 0.6}


@asynccontextmanager
async def live(**settings: object) -> AsyncIterator[tuple[ValrSimulator, SimServer, Market, Recorder]]:
    async with venue() as (sim, server):
        Participants(sim.exchange, "BTCZAR", mid=D(1_000_000)).seed_book(8)
        market, rec = make_market(server, **{**FAST, **settings})
        await market.open()
        try:
            await until(lambda: market.status is MarketStatus.OPEN, what="open")
            yield sim, server, market, rec
        finally:
            await market.close()


def _tasks() -> list[str]:
    return sorted(t.get_name() for t in asyncio.all_tasks() if "valr" in t.get_name())


async def test_pings_both_sockets_and_close_cancels_every_task() -> None:
    async with live(silence_timeout=30) as (sim, _, market, _rec):
        await until(lambda: sim.pings["trade"] >= 3 and sim.pings["account"] >= 3, what="pings")
        assert _tasks() == ["ws-valr/ws/account", "ws-valr/ws/trade"]  # one connection loop per socket
        await market.close()
        assert _tasks() == []
        await until(lambda: not sim.trade_conns and not sim.account_conns, what="server saw the close")


async def test_socket_without_pong_is_replaced_and_the_book_resyncs() -> None:
    async with live(silence_timeout=30) as (sim, _, market, rec):
        sim.faults.ignore_pings = True
        await until(
            lambda: sim.connections["trade"] >= 2 and sim.connections["account"] >= 2, what="replaced"
        )
        sim.faults.ignore_pings = False
        assert MarketStatus.UNSYNCED in rec.statuses
        await until(lambda: market.status is MarketStatus.OPEN, what="resynced")
        assert book_levels(market) == sim_levels(sim)


def _nudge(sim: ValrSimulator, price: int) -> None:
    """A house bid far below the market: the book changes (and its SequenceNumber moves on)."""
    account = sim.exchange.account("house-BTCZAR", house=True)
    sim.exchange.place(account, "BTCZAR", "buy", kind="limit", quantity=D("0.001"), price=D(price))


#: VALR's docs do not say whether the REST book's SequenceNumber and the socket's share a counter: the same
#: counter, a REST counter far ahead of the socket's, and one far behind
SEQUENCE_READINGS = pytest.mark.parametrize(
    "rest_offset", [0, 10**9, -(10**9)], ids=["shared", "ahead", "behind"]
)


@SEQUENCE_READINGS
async def test_silent_feed_on_an_active_market_unsyncs_probes_and_resyncs(rest_offset: int) -> None:
    async with live() as (sim, _, market, rec):
        sim.faults.rest_sequence_offset = rest_offset
        feed = client_of(market).feed
        for price in (500_000, 500_001):
            _nudge(sim, price)  # an active market
        await until(lambda: feed.active, what="book updates")
        loop = asyncio.get_running_loop()
        stalled, seen = loop.time(), len(rec.statuses)
        sim.go_silent()  # the socket stays open and answers PINGs, no book reaches us
        _nudge(sim, 500_002)  # VALR's book moves on
        await until(lambda: MarketStatus.UNSYNCED in rec.statuses[seen:], what="silence detected")
        assert loop.time() - stalled < 0.6 + 0.6  # the silence timeout (0.6 s), no more than a probe
        await until(lambda: sim.connections["trade"] >= 2, what="the probe reconnected the trade socket")
        assert feed.silence.silences == 1
        assert sim.connections["account"] == 1  # the account socket is not touched
        await until(lambda: market.status is MarketStatus.OPEN, what="resynced from a full book")
        assert book_levels(market) == sim_levels(sim)


@SEQUENCE_READINGS
async def test_quiet_market_is_probed_without_reconnects(rest_offset: int) -> None:
    async with live() as (sim, _, market, rec):
        sim.faults.rest_sequence_offset = rest_offset
        feed = client_of(market).feed
        assert feed.silence is not None
        opened = len(rec.statuses)
        await until(lambda: feed.silence.quiet_probes >= 3, timeout=10, what="quiet probes")
        assert sim.connections == {"trade": 1, "account": 1}
        assert rec.statuses[opened:] == []  # the market never left OPEN
        assert feed.silence.watch.timeout > feed.silence.watch.base_timeout  # probes back off


async def test_dropped_connections_reconnect_resync_and_reconcile() -> None:
    async with live(silence_timeout=30) as (sim, _, market, rec):
        account = client_of(market).account
        assert account is not None
        await until(lambda: account.reconciled == 1, what="start-up reconciliation")
        seen = len(rec.statuses)
        await sim.drop_connections()
        # the statuses since the drop: the resync may be over before a poll looks
        await until(lambda: MarketStatus.UNSYNCED in rec.statuses[seen:], what="unsynced")
        await until(
            lambda: market.status is MarketStatus.OPEN and account.reconciled == 2, what="reconnected"
        )
        assert sim.connections == {"trade": 2, "account": 2}
        assert book_levels(market) == sim_levels(sim)


async def test_refused_reconnects_back_off() -> None:
    async with live(silence_timeout=30, reconnect_max_delay=0.4) as (sim, _, market, _rec):
        sim.faults.refuse_connections = True
        await sim.drop_connections("trade")
        await asyncio.sleep(1.0)  # measuring the retry rate over a fixed window
        assert 2 <= sim.refused <= 12  # jittered 0.25..0.4 s delays, not a hot loop
        sim.faults.refuse_connections = False
        await until(lambda: market.status is MarketStatus.OPEN, what="back")


async def test_malformed_frames_are_survived() -> None:
    async with live(silence_timeout=30) as (sim, _, market, rec):
        seen = len(rec.statuses)
        sim.send_malformed()  # a frame that is not JSON, then a book with a broken level
        await until(lambda: MarketStatus.UNSYNCED in rec.statuses[seen:], what="broken book noticed")
        assert sim.connections["trade"] == 1  # the socket stays; the next full book resyncs
        sim.publish_book("BTCZAR")
        await until(lambda: market.status is MarketStatus.OPEN, what="resynced")
        assert book_levels(market) == sim_levels(sim)
        assert rec.statuses[-2:] == [MarketStatus.UNSYNCED, MarketStatus.OPEN]
