"""The kill switch on a venue: a strategy in a real engine rests orders on the Binance simulator; HALTED
(through the control plane, as the API, CLI and monitor send it) cancels every one of them at the exchange
before the command is answered, and refuses new ones until resumed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from exchanges.binance import KEY, BinanceSim

from moonship_core import OrderRequest, OrderStatus, Side

from .test_engine_outcomes import place, started

pytestmark = pytest.mark.anyio
D = Decimal


def open_at_exchange(sim: BinanceSim) -> list[str]:
    return [o.coid for o in sim.exchange.accounts[KEY].orders.values() if o.is_open]


async def test_halted_cancels_every_open_order_at_the_exchange_and_blocks_new_ones(sim: BinanceSim) -> None:
    engine, algo = await started(sim)
    control = engine.context.control
    try:
        resting = [
            await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D(p))) for p in ("29000", "29100")
        ]
        assert all(o.status is OrderStatus.PENDING for o in resting), resting
        assert sorted(open_at_exchange(sim)) == sorted(o.client_order_id for o in resting)

        info = await control.halt("outcomes", "venue test", "s")
        assert (info["trading_state"], info["open_orders"]) == ("HALTED", 0)
        assert open_at_exchange(sim) == []  # cancelled at the exchange before the answer
        known = len(sim.exchange.accounts[KEY].orders)
        refused = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("29000")))
        assert (refused.status, refused.error) == (OrderStatus.REJECTED, "RiskDenied")
        assert len(sim.exchange.accounts[KEY].orders) == known  # never sent

        await control.resume("outcomes", strategy="s")
        again = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("29000")))
        assert again.status is OrderStatus.PENDING
        assert open_at_exchange(sim) == [again.client_order_id]
        # the engine's HALT cancels it too
        assert (await control.halt("outcomes", "engine-wide"))["trading_state"] == "HALTED"
        assert open_at_exchange(sim) == []
    finally:
        await engine.stop()
