"""The behaviour every MarketClient shares, pinned on each venue's simulator over real sockets through a real
engine and a real algo: the order lifecycle and its events, rejections, unknown outcomes resolved once,
reconnect and resync, rate limits and Retry-After, clock resync, reconciliation after a reconnect."""

from __future__ import annotations

import asyncio

import pytest

from moonship_core import MarketStatus, Order, OrderRequest, OrderStatus, Side
from moonship_core.testing import until

from .conftest import Trading, trading_on
from .venues import Venue

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
PAPER = "paper orders never reach an exchange: there is nothing to fault"


def bid(t: Trading) -> OrderRequest:
    return OrderRequest.limit(Side.BUY, t.venue.size, t.venue.far_bid)


def filled(t: Trading, coid: str) -> bool:
    return any(u.client_order_id == coid and u.status is OrderStatus.FILLED for u in t.algo.updates)


async def test_an_order_rests_fills_and_cancels_each_change_an_event(trading: Trading) -> None:
    t = trading
    resting = await t.place(bid(t))
    assert resting.status is OrderStatus.PENDING and resting.id, resting
    assert len(t.venue.at_exchange(resting.client_order_id)) == (0 if t.venue.faults is None else 1)
    cancelled = await t.market.cancel_order(resting)
    assert cancelled.status is OrderStatus.CANCELLED, cancelled
    await until(lambda: [u.status for u in t.updates(resting)][-1:] == [OrderStatus.CANCELLED], what="cancel")

    taken = await t.place(bid(t))
    t.venue.sell_through(t.venue.far_bid)
    await until(lambda: filled(t, taken.client_order_id), 10, "fill")
    updates = t.updates(taken)
    assert [u.status for u in updates].count(OrderStatus.FILLED) == 1
    done = updates[-1]
    assert done.status is OrderStatus.FILLED and done.filled_quantity == t.venue.size
    assert sum(f.quantity for f in done.fills) == t.venue.size
    assert t.market.open_orders() == []
    assert t.engine.strategies["s"].active


async def test_a_refused_order_is_rejected_with_its_error_never_raised(trading: Trading) -> None:
    t = trading
    broke = await t.place(OrderRequest.limit(Side.BUY, t.venue.huge, t.venue.far_bid))
    assert (broke.status, broke.error) == (OrderStatus.REJECTED, "InsufficientFunds"), broke
    assert t.updates(broke) == [broke]  # the strategy hears of it, once
    assert t.venue.at_exchange(broke.client_order_id) == []
    assert (await t.place(bid(t))).status is OrderStatus.PENDING  # and trades on
    assert t.engine.strategies["s"].active


async def test_an_unknown_outcome_is_resolved_once_and_never_sent_twice(trading: Trading) -> None:
    t = trading
    if t.venue.faults is None:
        pytest.skip(PAPER)
    t.venue.faults.fail_after_execute = 1  # executed, then a 5xx: the client cannot know
    lost = await t.place(bid(t))
    if lost.status is OrderStatus.UNKNOWN:
        await until(lambda: t.updates(lost), 10, "unknown outcome resolved")
        resolved = t.updates(lost)[0]
    else:  # found at once (the venue refused a second copy of the client order id)
        resolved = lost
    assert resolved.status is OrderStatus.PENDING, resolved
    assert len(t.venue.at_exchange(lost.client_order_id)) == 1
    def known() -> list[Order]:  # the exchange's id may come after the resolution
        return [o for o in t.market.open_orders() if o.client_order_id == lost.client_order_id and o.id]

    await until(known, what="the exchange's order id")
    known_id = known()[0].id
    cancelled = await t.market.cancel_order(known()[0])
    assert cancelled.status is OrderStatus.CANCELLED
    await until(lambda: t.updates(lost)[-1:] and t.updates(lost)[-1].status is OrderStatus.CANCELLED)
    *before, last = t.updates(lost)
    assert all(u.status is OrderStatus.PENDING for u in before), before  # resolved once, never UNKNOWN again
    assert last.id == known_id


async def test_a_rate_limited_order_is_rejected_and_trading_resumes_after_it(trading: Trading) -> None:
    t = trading
    if t.venue.faults is None:
        pytest.skip(PAPER)
    t.venue.faults.orders_rate_limited, t.venue.faults.retry_after = 1, "1"
    loop = asyncio.get_running_loop()
    begun = loop.time()
    limited = await t.place(bid(t))
    sent = len(t.venue.at_exchange(limited.client_order_id))
    if limited.status is OrderStatus.PENDING:  # sent again once Retry-After had passed (nothing was executed)
        assert loop.time() - begun >= 1.0 and sent == 1
        assert sum(t.engine.counters.venues.rate_limit_waits.values()) >= 1  # the metrics saw the wait
    else:
        assert (limited.status, limited.error, sent) == (OrderStatus.REJECTED, "RateLimited", 0), limited
        await asyncio.sleep(1.0)  # the Retry-After
    assert (await t.place(bid(t))).status is OrderStatus.PENDING
    assert t.engine.strategies["s"].active


async def test_every_socket_dropped_the_market_resyncs_and_trading_goes_on(trading: Trading) -> None:
    t = trading
    seen = len(t.algo.statuses)
    await t.venue.drop()
    await until(lambda: MarketStatus.UNSYNCED in t.algo.statuses[seen:], 10, "unsynced")
    await until(lambda: t.market.status is MarketStatus.OPEN, 15, "resynced")
    # the metrics: the market's book resynced and the venue's sockets connected again
    assert t.engine.counters.markets[t.market.name].resyncs >= 1
    await until(lambda: sum(t.engine.counters.venues.reconnects.values()) >= 1, 5, "a reconnect counted")
    t.venue.nudge()
    await until(lambda: t.market.book.best_bid == t.venue.best_bid(), 5, "the exchange's book")
    taken = await t.place(bid(t))
    assert taken.status is OrderStatus.PENDING, taken
    t.venue.sell_through(t.venue.far_bid)
    await until(lambda: filled(t, taken.client_order_id), 10, "a fill after the reconnect")


async def test_a_fill_while_disconnected_is_reconciled_once_after_the_reconnect(trading: Trading) -> None:
    t = trading
    if t.venue.faults is None:
        pytest.skip("paper fills its own orders from the trades it sees: there is nothing at an exchange")
    taken = await t.place(bid(t))
    t.venue.faults.refuse_connections = True
    seen = len(t.algo.statuses)
    await t.venue.drop()
    await until(lambda: MarketStatus.UNSYNCED in t.algo.statuses[seen:], 10, "unsynced")
    t.venue.sell_through(t.venue.far_bid)  # fills while the client is away
    t.venue.faults.refuse_connections = False
    await until(lambda: filled(t, taken.client_order_id), 20, "the fill, reconciled")
    await until(lambda: t.market.status is MarketStatus.OPEN, 15, "resynced")
    statuses = [u.status for u in t.updates(taken)]
    assert statuses.count(OrderStatus.FILLED) == 1, statuses
    assert t.updates(taken)[-1].filled_quantity == t.venue.size


async def test_the_exchange_clock_moves_and_the_client_resyncs(trading: Trading) -> None:
    t = trading
    if t.venue.skew is None:
        pytest.skip(f"{t.venue.name} signs no timestamps: there is no clock to resync")
    t.venue.skew(3_600_000)  # an hour ahead: a signed request now carries a stale timestamp
    first = await t.place(bid(t))
    assert first.status in (OrderStatus.PENDING, OrderStatus.REJECTED), first  # an event, never raised
    await until(lambda: first.status is OrderStatus.PENDING or t.algo.placed[-1] is first)
    second = await t.place(bid(t))
    assert second.status is OrderStatus.PENDING, second
    assert t.engine.strategies["s"].active


def silence_caught(venue: Venue, timeout: float) -> None:
    if venue.go_silent is None or venue.silence_timeout is None:
        pytest.skip(f"{venue.name}'s silent-feed detection (issue 13 item 3) is not on the venue toolkit yet")
    venue.silence_timeout(timeout)


async def test_a_feed_that_stops_while_its_socket_stays_open_is_caught_and_resynced(venue: Venue) -> None:
    silence_caught(venue, 0.5)
    async with trading_on(venue) as t:
        books = t.algo.books
        t.venue.nudge()
        await until(lambda: t.algo.books > books, what="an active market")
        seen = len(t.algo.statuses)
        loop = asyncio.get_running_loop()
        stalled = loop.time()
        venue.go_silent()
        t.venue.nudge()  # the book moves on behind the stalled feed
        await until(lambda: MarketStatus.UNSYNCED in t.algo.statuses[seen:], 3, "UNSYNCED on silence")
        assert loop.time() - stalled < 1.0  # the silence timeout, and no more than a probe's time
        await until(lambda: t.market.status is MarketStatus.OPEN, 10, "resynced")
        await until(lambda: sum(t.engine.counters.venues.reconnects.values()) >= 1, 5, "a reconnect counted")
        t.venue.nudge()
        await until(lambda: t.market.book.best_bid == t.venue.best_bid(), 5, "the exchange's book")
        assert (await t.place(bid(t))).status is OrderStatus.PENDING


async def test_a_quiet_market_keeps_its_connection_and_stays_open(venue: Venue) -> None:
    silence_caught(venue, 0.2)
    async with trading_on(venue) as t:
        seen = len(t.algo.statuses)
        await asyncio.sleep(2.0)  # ten silence timeouts without a single update
        assert t.market.status is MarketStatus.OPEN
        # never active: probed quietly, no status churn (the OPEN of the start may reach the strategy late)
        assert MarketStatus.UNSYNCED not in t.algo.statuses[seen:], t.algo.statuses
        assert t.engine.counters.venues.reconnects == {}
