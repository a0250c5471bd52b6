"""Orders through the v2 endpoints, driven by the account socket, against the simulated VALR."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from exchanges.valr import Participants, SimServer, ValrSimulator
from moonship_valr.user_stream import order_from_status

from moonship_core import (
    AuthenticationError,
    InvalidOrder,
    MarketStatus,
    Order,
    OrderNotFound,
    OrderRequest,
    OrderStatus,
    RateLimited,
    Side,
    TimeInForce,
)
from moonship_core.testing import until
from moonship_core.trading.market import Market

from .harness import API_KEY, OWNER, D, Recorder, client_of, make_market, venue

pytestmark = pytest.mark.anyio
MID = D(1_000_000)


@asynccontextmanager
async def trading(
    funds: dict[str, str] | None = None, **settings: object
) -> AsyncIterator[tuple[ValrSimulator, SimServer, Market, Recorder, Participants]]:
    """A funded account, a seeded book (bids 999999..., asks 1000001...) and an open, synced market."""
    async with venue(funds) as (sim, server):
        house = Participants(sim.exchange, "BTCZAR", mid=MID)
        house.seed_book(10)
        market, rec = make_market(server, **settings)
        await market.open()
        try:
            await until(lambda: market.status is MarketStatus.OPEN, what="market open")
            await until(lambda: client_of(market).account.reconciled > 0, what="start-up reconciliation")  # type: ignore[union-attr]
            yield sim, server, market, rec, house
        finally:
            await market.close()


def last(rec: Recorder, coid: str) -> Order | None:
    mine = [o for o in rec.orders if o.client_order_id == coid]
    return mine[-1] if mine else None


async def final(rec: Recorder, coid: str) -> Order:
    await until(lambda: (o := last(rec, coid)) is not None and o.status.is_final, what=f"{coid} final")
    order = last(rec, coid)
    assert order is not None
    return order


async def test_resting_order_fills_as_maker_then_cancel_keeps_fills_and_balances_follow() -> None:
    async with trading() as (sim, _, market, rec, house):
        req = OrderRequest.limit(Side.BUY, D("0.05"), D("999990"), post_only=True)
        ack = await market.place_order(req, owner=OWNER)
        assert ack.status is OrderStatus.PENDING and ack.id
        wire = sim.exchange.orders[ack.id]
        assert wire.customer_order_id == req.client_order_id and wire.type == "post-only limit"
        await until(lambda: market.balances["ZAR"].locked > 0, what="reserve")
        zar = market.balances["ZAR"]
        assert zar.locked == D("49999.5") and zar.free == D(1_000_000) - D("49999.5")
        # a taker sweeps down to our price: we are a maker BUY, paid in quote (a reward here)
        bids = sim.exchange.books["BTCZAR"].bids
        ahead = sum((o.remaining for p in bids.prices() if p > 999_990 for o in bids.levels[p]), D(0))
        sim.exchange.place(
            house.account,
            "BTCZAR",
            "sell",
            kind="limit",
            quantity=ahead + D("0.02"),
            price=D(999_990),
            time_in_force="IOC",
        )
        await until(lambda: (o := last(rec, req.client_order_id)) is not None and o.fills, what="fill")
        partial = last(rec, req.client_order_id)
        assert partial is not None and partial.status is OrderStatus.PARTIALLY_FILLED
        fill = partial.fills[0]
        trade = sim.exchange.trades["BTCZAR"][-1]
        assert fill.trade_id == trade.id and fill.is_maker and fill.fee_asset == "ZAR"
        assert fill.fee == -(trade.price * trade.quantity * D("0.0001")).quantize(D("1e-8"))
        cancelled = await market.cancel_order(partial)
        assert cancelled.status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
        assert cancelled.filled_quantity == fill.quantity and cancelled.fills == partial.fills
        assert (await final(rec, req.client_order_id)).status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
        await until(lambda: market.balances["ZAR"].locked == 0, what="released")
        balances = await market.get_balances()
        account = sim.account(API_KEY)
        assert balances["BTC"].free == account.available["BTC"] == D(10) + fill.quantity
        assert balances["ZAR"].total == account.available["ZAR"] + account.reserved["ZAR"]
        assert market.balances["ZAR"] == balances["ZAR"]


async def test_taker_fees_and_time_in_force() -> None:
    async with trading() as (sim, _, market, rec, _house):
        asks = sim.exchange.books["BTCZAR"].asks
        top = [(p, sum((o.remaining for o in asks.levels[p]), D(0))) for p in list(asks.prices())[:2]]
        # IOC through two levels: taker BUY pays its fee in base; the remainder expires
        qty = top[0][1] + top[1][1] + D("0.5")
        ioc = OrderRequest.limit(Side.BUY, qty, top[1][0], time_in_force=TimeInForce.IOC)
        await market.place_order(ioc, owner=OWNER)
        done = await final(rec, ioc.client_order_id)
        assert done.status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
        assert [f.price for f in done.fills] == [top[0][0], top[1][0]]
        assert all(not f.is_maker and f.fee_asset == "BTC" for f in done.fills)
        assert done.fees == {
            "BTC": (top[0][1] * D("0.001")).quantize(D("1e-8")) + (top[1][1] * D("0.001")).quantize(D("1e-8"))
        }
        # IOC with nothing to take: expired, not "partially filled" (the original inverted this)
        none = OrderRequest.limit(Side.BUY, D("0.01"), D(900_000), time_in_force=TimeInForce.IOC)
        await market.place_order(none, owner=OWNER)
        assert (await final(rec, none.client_order_id)).status is OrderStatus.EXPIRED
        # FOK larger than the book: expired untouched; FOK that fits: filled
        big = OrderRequest.limit(Side.SELL, D(5), D(999_000), time_in_force=TimeInForce.FOK)
        await market.place_order(big, owner=OWNER)
        expired = await final(rec, big.client_order_id)
        assert expired.status is OrderStatus.EXPIRED and not expired.fills
        fits = OrderRequest.limit(Side.SELL, D("0.001"), D(999_000), time_in_force=TimeInForce.FOK)
        await market.place_order(fits, owner=OWNER)
        filled = await final(rec, fits.client_order_id)
        assert filled.status is OrderStatus.FILLED and filled.fills[0].fee_asset == "ZAR"  # taker SELL: quote


async def test_market_orders_by_base_and_by_quote_amount() -> None:
    async with trading() as (sim, _, market, rec, _house):
        sell = OrderRequest.market(Side.SELL, quantity=D("0.003"))
        await market.place_order(sell, owner=OWNER)
        done = await final(rec, sell.client_order_id)
        assert done.status is OrderStatus.FILLED and done.filled_quantity == D("0.003")
        assert sim.exchange.orders[done.id].type == "market"
        buy = OrderRequest.market(Side.BUY, quote_quantity=D(5000))
        await market.place_order(buy, owner=OWNER)
        bought = await final(rec, buy.client_order_id)
        assert bought.status is OrderStatus.FILLED and bought.quantity is None
        assert D(4990) < bought.filled_quote_quantity <= D(5000)
        assert bought.fills and all(f.fee_asset == "BTC" for f in bought.fills)


async def test_cancel_unknown_and_already_filled_orders() -> None:
    async with trading() as (sim, _, market, rec, house):
        rest = OrderRequest.limit(Side.SELL, D("0.01"), D(1_000_050), post_only=True)
        ack = await market.place_order(rest, owner=OWNER)
        cancelled = await market.cancel_order(ack)
        assert cancelled.status is OrderStatus.CANCELLED and not cancelled.fills
        ghost = Order(
            "0f0f0f0f-0000-0000-0000-000000000000",
            "nope-1",
            "BTCZAR",
            Side.BUY,
            ack.type,
            OrderStatus.PENDING,
            created=ack.created,
            updated=ack.created,
        )
        with pytest.raises(OrderNotFound):
            await market.client.cancel_order(ghost)
        taken = OrderRequest.limit(Side.SELL, D("0.01"), D(1_000_000), post_only=True)
        ack = await market.place_order(taken, owner=OWNER)
        sim.exchange.place(house.account, "BTCZAR", "buy", kind="market", quantity=D(5))
        await final(rec, taken.client_order_id)
        assert (await market.client.cancel_order(ack)).status is OrderStatus.FILLED


@pytest.mark.parametrize("form", ["400", "201"])
async def test_refusals_map_onto_the_taxonomy_in_both_v2_forms(form: str) -> None:
    async with trading({"ZAR": "1000", "BTC": "0.001"}) as (sim, _, market, rec, _house):
        sim.faults.v2_failure_form = form
        client = market.client
        funds = await market.place_order(OrderRequest.limit(Side.BUY, D("0.01"), D(999_000)), owner=OWNER)
        assert (funds.status, funds.error) == (OrderStatus.REJECTED, "InsufficientFunds")
        taker = OrderRequest.limit(Side.SELL, D("0.0005"), D(999_999), post_only=True)
        crossed = await market.place_order(taker)
        assert (crossed.status, crossed.error) == (OrderStatus.REJECTED, "PostOnlyRejected")
        with pytest.raises(InvalidOrder) as err:  # below VALR's minimum (the market would refuse it first)
            await client.place_order(OrderRequest.limit(Side.SELL, D("0.00001"), D(1_000_100)))
        assert err.value.rule == "min_quantity" and err.value.code == -12007
        with pytest.raises(InvalidOrder, match="client order id"):
            await client.place_order(
                OrderRequest.limit(Side.SELL, D("0.001"), D(1_000_100), client_order_id="a b")
            )
        # a refused order reaches its owner as a REJECTED update and leaves nothing open
        assert rec.orders == [funds] and market.open_orders() == []
        assert await client.get_open_orders() == []
        failed = [o for o in sim.exchange.orders.values() if o.account is sim.account(API_KEY)]
        assert len(failed) == (2 if form == "201" else 0) and all(o.status == "Failed" for o in failed)


async def test_lost_answer_is_resolved_and_retries_never_double_an_order() -> None:
    async with trading() as (sim, server, market, rec, _house):
        sim.faults.fail_after_execute = 1
        req = OrderRequest.limit(Side.BUY, D("0.01"), D(999_000), post_only=True)
        assert (await market.place_order(req, owner=OWNER)).status is OrderStatus.UNKNOWN
        # the account socket (or the market's lookup) tells the strategy the order exists
        await until(lambda: (o := last(rec, req.client_order_id)) is not None and o.id, what="resolved")
        again = await market.client.place_order(req)  # a retry: no second order
        mine = [o for o in sim.exchange.orders.values() if o.customer_order_id == req.client_order_id]
        assert len(mine) == 1 and again.id == mine[0].id
        # a fresh process retrying: VALR says duplicate customerOrderId, the client finds the first order
        other, other_rec = make_market(server, name="btc2", unknown_orders="ignore")
        await other.open()
        try:
            found = await other.place_order(req, owner=OWNER)
            assert found.id == mine[0].id and found.status is OrderStatus.PENDING
            assert found.client_order_id == req.client_order_id
            await other.cancel_order(found)  # and it is tracked from then on
            await final(other_rec, req.client_order_id)
        finally:
            await other.close()
        assert (
            len([o for o in sim.exchange.orders.values() if o.customer_order_id == req.client_order_id]) == 1
        )


async def test_fills_missing_from_the_socket_come_from_rest() -> None:
    async with trading() as (sim, _, market, rec, house):
        sim.faults.drop_account_trades = True
        req = OrderRequest.limit(Side.SELL, D("0.02"), D(1_000_000), post_only=True)
        await market.place_order(req, owner=OWNER)
        sim.exchange.place(house.account, "BTCZAR", "buy", kind="market", quantity=D(5))
        done = await final(rec, req.client_order_id)
        assert done.status is OrderStatus.FILLED and done.filled_quantity == D("0.02")
        fill = done.fills[0]
        assert fill.is_maker and fill.fee_asset == "BTC" and fill.fee == D("-0.000002")  # maker SELL: base
        assert ("GET", "/v1/account/BTCZAR/tradehistory") in sim.requests


async def test_reconnect_reconciles_what_happened_while_disconnected() -> None:
    async with trading() as (sim, _, market, rec, house):
        client = client_of(market)
        assert client.account is not None
        req = OrderRequest.limit(Side.SELL, D("0.02"), D(1_000_000), post_only=True)
        await market.place_order(req, owner=OWNER)
        reconciled = client.account.reconciled
        sim.faults.refuse_connections = True
        await sim.drop_connections("account")
        await until(lambda: not sim.account_conns, what="account socket down")
        sim.exchange.place(house.account, "BTCZAR", "buy", kind="market", quantity=D(5))
        sim.fund(API_KEY, "ZAR", "1")
        await asyncio.sleep(0.3)
        assert last(rec, req.client_order_id).status is OrderStatus.PENDING  # type: ignore[union-attr]
        sim.faults.refuse_connections = False
        done = await final(rec, req.client_order_id)
        assert client.account.reconciled > reconciled
        assert done.status is OrderStatus.FILLED and len(done.fills) == 1 and done.fills[0].fee_asset == "BTC"
        account = sim.account(API_KEY)
        await until(lambda: market.balances["ZAR"].free == account.available["ZAR"], what="balances")


async def test_no_rest_polling_while_orders_rest_in_a_busy_market() -> None:
    async with trading() as (sim, _, market, rec, house):
        req = OrderRequest.limit(Side.BUY, D("0.01"), D(999_000), post_only=True)
        await market.place_order(req, owner=OWNER)
        before = len(sim.requests)
        house.rate = 400
        async with house:
            await until(lambda: house.actions > 150 and rec.books > 50, what="activity")
        assert sim.requests[before:] == []  # the sockets carry everything


async def test_rate_limits_stale_timestamps_and_clock_skew() -> None:
    async with venue() as (sim, server):
        Participants(sim.exchange, "BTCZAR", mid=MID).seed_book(3)
        sim.clock_skew_ms = 10 * 60_000  # VALR's clock is 10 minutes ahead of ours
        market, _rec = make_market(server)
        await market.open()
        try:
            client = market.client
            assert client_of(market).session.server_time.offset_ms > 590_000
            assert (await client.get_balances())["BTC"].free == D(10)
            sim.faults.stale_timestamp_next = 1  # refused once: the client resyncs its clock and retries
            assert (await client.get_balances())["ZAR"].free == D(1_000_000)
            sim.faults.rate_limited = 1  # a GET waits out the 429 and retries
            assert await client.get_open_orders() == []
            sim.faults.rate_limited = 1  # an order is not retried: the caller decides
            with pytest.raises(RateLimited):
                await client.place_order(OrderRequest.limit(Side.BUY, D("0.01"), D(999_000)))
            assert not any(o.account is sim.account(API_KEY) for o in sim.exchange.orders.values())
        finally:
            await market.close()


async def test_wrong_secret_is_an_authentication_error() -> None:
    async with venue() as (_sim, server):
        market, _ = make_market(server, api_secret="wrong")
        with pytest.raises(AuthenticationError):
            await market.client.get_balances()
        await client_of(market).session.aclose()


async def test_sub_account_is_signed_on_rest_and_the_account_socket() -> None:
    async with venue() as (sim, server):
        Participants(sim.exchange, "BTCZAR", mid=MID).seed_book(3)
        sim.fund(API_KEY, "ZAR", "50000", sub_account="1234")
        market, _ = make_market(server, extra={"sub_account_id": "1234"})
        await market.open()
        try:
            await until(lambda: "ZAR" in market.balances, what="sub-account balances")
            assert market.balances["ZAR"].free == D(50000)  # not the main account's 1 000 000
            req = OrderRequest.limit(Side.BUY, D("0.01"), D(999_000), post_only=True)
            ack = await market.place_order(req, owner=OWNER)
            assert sim.exchange.orders[ack.id].account is sim.account(API_KEY, "1234")
            await until(lambda: market.balances["ZAR"].locked == D(9990), what="socket of the sub-account")
            elsewhere = OrderRequest.limit(Side.BUY, D("0.01"), D(999_000), account="999")
            other = await market.place_order(elsewhere)
            assert other.error == "InvalidOrder" and "sub-account" in (other.reason or "")
        finally:
            await market.close()


def test_status_strings_map_onto_moonship_statuses() -> None:
    def status(valr: str, original: str = "1", remaining: str = "1") -> OrderStatus:
        data = {
            "orderId": "x",
            "orderStatusType": valr,
            "originalQuantity": original,
            "remainingQuantity": remaining,
            "orderSide": "buy",
            "orderType": "limit",
            "originalPrice": "1",
        }
        return order_from_status(data, "BTCZAR").status

    assert status("Placed") is status("Active") is OrderStatus.PENDING
    assert status("Partially Filled", "1", "0.4") is OrderStatus.PARTIALLY_FILLED
    assert status("Filled", "1", "0") is OrderStatus.FILLED
    assert status("Cancelled") is OrderStatus.CANCELLED
    assert status("Cancelled", "1", "0.5") is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    assert status("Expired") is OrderStatus.EXPIRED
    assert status("Expired", "1", "0.5") is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    assert status("Failed") is OrderStatus.REJECTED
    failed = {
        "orderId": "x",
        "orderStatusType": "Failed",
        "failedReason": "Insufficient Balance",
        "orderSide": "sell",
    }
    assert order_from_status(failed, "BTCZAR").reason == "Insufficient Balance"
