"""The shared user stream: routing by market, Luno's replay after short outages (duplicates ignored), and
reconciliation through REST at start-up and after outages longer than the replay."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from exchanges.luno import LunoSimulator
from exchanges.luno.engine import User

from moonship_core import OrderRequest, OrderStatus, Side
from moonship_core.testing import until

from .conftest import KEY, PAIR, latest, started

pytestmark = pytest.mark.anyio
D = Decimal


def other(sim: LunoSimulator) -> User:
    return sim.exchange.add_user("other", "o", {"XBT": "100", "ZAR": "1000000000"})


def sim_fills(sim: LunoSimulator, order_id: str) -> list[tuple[Decimal, Decimal]]:
    rows = [t for t in sim.exchange.users[KEY].trades if t["order_id"] == order_id]
    return [(D(t["base"]), D(t["counter"]) / D(t["base"])) for t in rows]


async def test_one_user_stream_serves_every_market_and_routes_by_market(sim: LunoSimulator) -> None:
    sim.exchange.add_market("ETHZAR", "ETH", "ZAR", price_scale=0, volume_scale=2, min_volume="0.01")
    sim.exchange.users[KEY].accounts["ETH"] = type(sim.exchange.users[KEY].accounts["XBT"])(
        KEY, "8203463422869999999", "ETH", D("10")
    )
    shared: dict[str, object] = {}
    xbt, xbt_events = await started(sim, shared=shared)
    eth, eth_events = await started(sim, pair="ETHZAR", shared=shared)
    assert xbt.user_stream is eth.user_stream and sim.stats["user_connects"] == 1
    taker = other(sim)
    a = await xbt.place_order(OrderRequest.limit(Side.SELL, D("0.1"), D("1000000")))
    b = await eth.place_order(OrderRequest.limit(Side.SELL, D("1"), D("50000")))
    sim.exchange.post_market(taker, "ETHZAR", "BUY", base_volume="1")
    await until(lambda: latest(eth_events, b).status is OrderStatus.FILLED, what="ETH order filled")
    assert not xbt_events.updates_of(b.client_order_id) and not eth_events.updates_of(a.client_order_id)
    await eth.close()
    assert xbt.user_stream.listeners == [xbt]
    await xbt.close()


async def test_replayed_messages_after_a_short_outage_are_ignored(sim: LunoSimulator) -> None:
    client, events = await started(sim)
    taker = other(sim)
    order = await client.place_order(OrderRequest.limit(Side.SELL, D("0.5"), D("1000000")))
    sim.exchange.post_market(taker, PAIR, "BUY", base_volume="0.1")
    await until(lambda: latest(events, order).filled_quantity == D("0.1"), what="first fill")

    # the user stream drops; a fill happens while it is down; it comes back within Luno's replay window
    sim.faults.user_stream_down = True
    sim.drop_user_streams()
    assert client.user_stream is not None
    await until(lambda: not client.user_stream.connected.is_set(), what="user stream down")
    sim.exchange.post_market(taker, PAIR, "BUY", base_volume="0.15")
    trades_calls = sim.stats["/api/1/listtrades"]
    sim.faults.user_stream_down = False
    await until(lambda: latest(events, order).filled_quantity == D("0.25"), what="replayed fill")
    sim.exchange.post_market(taker, PAIR, "BUY", base_volume="0.25")
    await until(lambda: latest(events, order).status is OrderStatus.FILLED, what="filled")
    final = latest(events, order)
    # every fill exactly once, although the replay repeated the first one
    assert [(f.quantity, f.price) for f in final.fills] == sim_fills(sim, order.id)
    assert sim.stats["/api/1/listtrades"] == trades_calls  # the replay covered it: no REST reconciliation
    assert sim.stats["user_connects"] == 2
    await client.close()


async def test_an_outage_longer_than_the_replay_reconciles_through_rest(sim: LunoSimulator) -> None:
    sim.replay_window = 0.3
    client, events = await started(sim, replay_window=0.3)
    taker = other(sim)
    filled = await client.place_order(OrderRequest.limit(Side.SELL, D("0.2"), D("1000000")))
    partial = await client.place_order(OrderRequest.limit(Side.SELL, D("0.5"), D("1000100")))
    sim.faults.user_stream_down = True
    sim.drop_user_streams()
    assert client.user_stream is not None
    await until(lambda: not client.user_stream.connected.is_set(), what="user stream down")
    loop = asyncio.get_running_loop()
    down_at = loop.time()
    sim.exchange.post_market(taker, PAIR, "BUY", base_volume="0.05")  # two trades against `filled`
    sim.exchange.post_market(taker, PAIR, "BUY", base_volume="0.15")
    sim.exchange.post_market(taker, PAIR, "BUY", base_volume="0.3")  # 0.3 of `partial`
    # stay down past both replay windows, so Luno's buffer no longer holds those fills
    await until(lambda: loop.time() - down_at > 0.6, what="outage beyond the replay window")
    sim.faults.user_stream_down = False
    await until(lambda: latest(events, filled).status is OrderStatus.FILLED, what="reconciled fill")
    await until(lambda: latest(events, partial).filled_quantity == D("0.3"), what="reconciled partial")
    # fills recovered trade by trade from listtrades, with Luno's trade sequence numbers as ids
    for order in (filled, partial):
        fills = latest(events, order).fills
        assert [(f.quantity, f.price) for f in fills] == sim_fills(sim, order.id)
        assert all(f.trade_id.isdigit() and f.is_maker for f in fills)
    assert latest(events, partial).status is OrderStatus.PARTIALLY_FILLED
    await client.close()


async def test_start_up_reconciles_orders_placed_before(sim: LunoSimulator) -> None:
    me = sim.exchange.users[KEY]
    earlier = sim.exchange.post_limit(me, PAIR, "ASK", "0.4", "1000000.00", client_order_id="before-1")
    sim.exchange.post_market(other(sim), PAIR, "BUY", base_volume="0.1")
    client, events = await started(sim)
    open_orders = await client.get_open_orders()
    assert [(o.id, o.client_order_id, o.filled_quantity, o.status) for o in open_orders] == [
        (earlier.order_id, "before-1", D("0.1"), OrderStatus.PARTIALLY_FILLED)
    ]
    await until(lambda: bool(events.updates_of("before-1")), what="start-up reconciliation")
    assert [f.quantity for f in events.updates_of("before-1")[-1].fills] == [D("0.1")]
    assert {b.asset for b in events.balance_updates} >= {"XBT", "ZAR"}
    await client.close()


async def test_a_silent_user_stream_is_reconnected(sim: LunoSimulator) -> None:
    client, events = await started(sim, user_silence_timeout=1.0)
    sim.stale_user_streams()
    await until(lambda: sim.stats["user_connects"] == 2, what="user stream reconnected")
    order = await client.place_order(OrderRequest.limit(Side.SELL, D("0.1"), D("1000000")))
    sim.exchange.post_market(other(sim), PAIR, "BUY", base_volume="0.1")
    await until(lambda: latest(events, order).status is OrderStatus.FILLED, what="fill on the new stream")
    await client.close()


async def test_user_stream_frames_as_a_third_party_client_recorded_them(sim: LunoSimulator) -> None:
    """The user stream's frames in the shape a third-party Luno user-stream client documents from Luno's
    own messages (code index file 224623099): `type` plus `order_status_update` / `order_fill_update`,
    cumulative `*_fill` and `*_fee` strings (counter amounts with 16 decimals), `client_order_id` empty (the
    sample's order had none: the order is found by `order_id`). No trade happens at the simulator: the
    client takes the fill from the frame alone."""
    client, events = await started(sim)
    order = await client.place_order(OrderRequest.limit(Side.BUY, D("0.01"), D("990000")))
    user = sim.exchange.users[KEY]
    sim.exchange.push_user(user, "order_fill", {
        "order_id": order.id, "client_order_id": "", "market_id": PAIR,
        "base_fill": "0.00100000", "counter_fill": "990.0000000000000000",
        "base_delta": "0.00100000", "counter_delta": "990.0000000000000000",
        "base_fee": "0.00000350", "counter_fee": "0",
        "base_fee_delta": "0.00000350", "counter_fee_delta": "0",
    })
    await until(lambda: latest(events, order).filled_quantity == D("0.001"), what="fill from the frame")
    update = latest(events, order)
    assert update.status is OrderStatus.PARTIALLY_FILLED
    assert [(f.price, f.quantity) for f in update.fills] == [(D("990000"), D("0.001"))]
    assert update.fees == {"XBT": D("0.0000035")}
    await client.close()
