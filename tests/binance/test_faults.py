"""The simulator's fault switches against the client: gaps, drops, malformed frames, shutdowns,
the 24-hour cut, slow and failing REST answers, clock skew, rate limits, and reconciliation of
missed fills."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from exchanges.binance import KEY, BinanceSim
from moonship_binance.client import BinanceClient

from moonship_core import (
    MarketStatus,
    NetworkError,
    OrderRequest,
    OrderStatus,
    OrderStatusUnknown,
    RateLimited,
    Side,
)
from moonship_core.testing import RecordingEvents, until

from .conftest import fast, make_client, seed_book
from .test_market_data import assert_book_matches

pytestmark = pytest.mark.anyio
D = Decimal


async def connected(sim: BinanceSim, **settings: object) -> tuple[BinanceClient, RecordingEvents]:
    client, events = make_client(fast(sim, **settings))
    await client.get_market_info()
    await client.connect()
    await until(lambda: events.status_now is MarketStatus.OPEN, what="book synced")
    return client, events


@pytest.fixture
async def live(sim: BinanceSim) -> AsyncIterator[tuple[BinanceClient, RecordingEvents]]:
    client, events = await connected(sim)
    await until(lambda: client.session.user_streams[KEY].subscribed.is_set(), what="user stream")
    yield client, events
    await client.close()


async def test_skipped_update_ids_force_a_resync(
    sim: BinanceSim, live: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, events = live
    before, snapshots = len(events.unsynced()), sim.depth_requests
    sim.skip_update_ids("BTCUSDT", 7)
    sim.exchange.set_level("BTCUSDT", "b", "29999.5", "3")
    await until(lambda: len(events.unsynced()) > before, what="UNSYNCED on the gap")
    assert "gap" in events.statuses[-1][1] or events.statuses[-1][0] is MarketStatus.OPEN
    await until(lambda: events.status_now is MarketStatus.OPEN and events.book.best_bid == D("29999.5"))
    assert sim.depth_requests == snapshots + 1 and client.feed.resyncs == 1
    assert_book_matches(sim, events)


async def test_dropped_connection_reconnects_and_resyncs(
    sim: BinanceSim, live: tuple[BinanceClient, RecordingEvents]
) -> None:
    _, events = live
    before = len(events.unsynced())
    sim.drop_connections("stream")
    await until(lambda: len(events.unsynced()) > before, what="UNSYNCED on disconnect")
    sim.exchange.set_level("BTCUSDT", "a", "30000.25", "1")  # changes while away come with the new snapshot
    await until(lambda: sim.stream_connects == 2 and events.status_now is MarketStatus.OPEN)
    await until(lambda: events.book.best_ask == D("30000.25"))
    assert_book_matches(sim, events)


async def test_malformed_frame_is_survived(
    sim: BinanceSim, live: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, events = live
    sim.send_malformed("stream")
    sim.send_malformed("api")
    await until(lambda: client.session.stream.malformed == 1)
    sim.exchange.set_level("BTCUSDT", "a", "30000.75", "1")
    await until(lambda: events.book.best_ask == D("30000.75"))
    assert sim.stream_connects == 1 and events.status_now is MarketStatus.OPEN


async def test_server_shutdown_reconnects_promptly(
    sim: BinanceSim, live: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, events = live
    sim.server_shutdown()
    await until(lambda: sim.stream_connects == 2 and sim.api_connects == 2, what="both sockets renewed")
    user = client.session.user_streams[KEY]
    await until(lambda: events.status_now is MarketStatus.OPEN and user.subscribed.is_set())
    assert any("serverShutdown" in reason for _, reason in events.statuses)


async def test_connections_are_renewed_ahead_of_the_24_hour_cut(sim: BinanceSim) -> None:
    client, events = await connected(sim, reconnect_after=0.4)
    await until(lambda: sim.stream_connects >= 2 and sim.api_connects >= 2, what="scheduled reconnects")
    assert any("scheduled reconnect" in reason for _, reason in events.statuses)
    await until(lambda: events.status_now is MarketStatus.OPEN)
    await client.close()


async def test_server_cut_is_survived() -> None:
    async with BinanceSim(max_connection_age=0.3) as sim:
        seed_book(sim)
        client, events = await connected(sim)
        await until(lambda: sim.stream_connects >= 3 and sim.api_connects >= 3, what="reconnects after cuts")
        await until(lambda: events.status_now is MarketStatus.OPEN)
        await client.close()


async def test_5xx_after_executing_leaves_the_order_unknown_until_queried(
    sim: BinanceSim, live: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, events = live
    sim.faults.fail("/api/v3/order", 503)
    request = OrderRequest.limit(Side.BUY, D("0.1"), D("29000"))
    with pytest.raises(OrderStatusUnknown) as err:
        await client.place_order(request)
    assert err.value.client_order_id == request.client_order_id
    pending = client._orders[request.client_order_id]  # still tracked (UNKNOWN, or what the stream said)
    found = await client.get_order(pending)
    assert found.status is OrderStatus.PENDING and found.id
    await until(lambda: events.latest(request.client_order_id) is not None)  # the stream told us too


async def test_slow_answer_past_the_timeout_is_unknown_not_failed(sim: BinanceSim) -> None:
    client, _ = make_client(fast(sim, request_timeout=0.3))
    await client.get_market_info()
    sim.faults.delay("/api/v3/order", 1.0)
    request = OrderRequest.limit(Side.SELL, D("0.2"), D("31000"))
    with pytest.raises(OrderStatusUnknown):
        await client.place_order(request)
    retried = await client.place_order(request)  # the same client order id is looked up, not re-sent
    assert retried.status is OrderStatus.PENDING
    assert (
        len([o for o in sim.exchange.accounts[KEY].orders.values() if o.coid == request.client_order_id]) == 1
    )
    await client.close()


async def test_clock_skew_resyncs_on_1021(sim: BinanceSim) -> None:
    client, _ = make_client(fast(sim))
    assert (await client.get_balances())["BTC"].free == D("10")
    sim.exchange.clock_offset_ms = 30_000  # the server's clock jumps ahead of ours
    assert (await client.get_balances())["BTC"].free == D("10")
    assert [p for m, path, p in sim.requests if path.endswith("/time")].__len__() == 2
    assert abs(client.session.rest.server_time.offset_ms - 30_000) < 1000
    await client.close()


async def test_requests_are_paced_under_the_weight_limit() -> None:
    async with BinanceSim(weight_limit=60, weight_seconds=1) as sim:
        client, _ = make_client(fast(sim))
        await client.get_market_info()  # adopts the 60-per-second table (this call spends 20)
        started = time.monotonic()
        for _ in range(5):
            await client.get_recent_trades(5)  # 25 each: 145 in total needs three windows
        assert time.monotonic() - started > 1.0
        assert not [1 for *_, p in sim.requests if p.get("code")]
        await client.close()


async def test_429_retry_after_holds_every_request_back() -> None:
    async with BinanceSim(weight_limit=100, weight_seconds=2) as sim:
        client, _ = make_client(fast(sim))
        await asyncio.sleep(2 - time.monotonic() % 2 + 0.05)  # early in an interval: it cannot reset under us
        sim.weight.add(time.monotonic(), 100)  # another process on our IP spent the window's weight
        with pytest.raises(RateLimited) as limited:
            await client.get_recent_trades(5)
        retry_after = limited.value.retry_after
        assert retry_after in (1, 2)  # the rest of Binance's fixed 2-second interval, rounded up
        asked, started = len(sim.requests), time.monotonic()
        await client.get_recent_trades(5)  # not sent before Retry-After: no 418 ban follows
        assert time.monotonic() - started >= retry_after - 0.05
        assert len(sim.requests) == asked + 1 and sim.banned_until == 0
        await client.close()


async def test_418_ban_retry_after_is_honoured(sim: BinanceSim) -> None:
    client, _ = make_client(fast(sim))
    sim.banned_until = time.monotonic() + 1.2
    with pytest.raises(RateLimited) as banned:
        await client.get_recent_trades(5)
    assert banned.value.retry_after == 2
    asked, started = len(sim.requests), time.monotonic()
    assert len(await client.get_recent_trades(5)) == 0
    assert time.monotonic() - started >= 1.9 and len(sim.requests) == asked + 1
    await client.close()


async def test_fills_missed_while_the_user_stream_was_down_are_reconciled(
    sim: BinanceSim, live: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, events = live
    request = OrderRequest.limit(Side.SELL, D("1"), D("30000.5"))
    await client.place_order(request)
    await until(lambda: events.latest(request.client_order_id) is not None)
    sim.faults.subscribe_error = -1001  # keep it down while the order fills
    sim.drop_connections("api")
    await until(lambda: not client.session.user_streams[KEY].subscribed.is_set())
    sim.exchange.take("BTCUSDT", "BUY", "0.3")
    sim.exchange.take("BTCUSDT", "BUY", "0.7")
    missed = events.latest(request.client_order_id)
    assert missed is not None and missed.status is OrderStatus.PENDING
    sim.faults.subscribe_error = None
    await until(
        lambda: (o := events.latest(request.client_order_id)) is not None and o.status is OrderStatus.FILLED,
        what="reconciled fill",
    )
    filled = events.latest(request.client_order_id)
    assert filled is not None and [f.quantity for f in filled.fills] == [D("0.3"), D("0.7")]
    assert filled.fees == {"USDT": D("30.0005")}
    assert any(path.endswith("/myTrades") for _, path, _ in sim.requests)
    await until(
        lambda: {b.asset: b for b in events.balance_events[-1]}["BTC"].free == D("9"), what="balances"
    )


async def test_network_error_is_not_unknown_when_nothing_was_sent(sim: BinanceSim) -> None:
    client, _ = make_client(fast(sim, rest_url="http://127.0.0.1:9"))
    with pytest.raises(NetworkError) as err:
        await client.get_recent_trades()
    assert not isinstance(err.value, OrderStatusUnknown)
    await client.close()
