"""The kill switch on Luno: HALTED cancels a strategy's resting orders at the exchange before the command is
answered and refuses new ones until resumed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from exchanges.luno import LunoSimulator

from moonship_core import OrderRequest, OrderStatus, Side

from .test_engine_outcomes import at_sim, place, seed, started

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
D = Decimal


def open_at_exchange(sim: LunoSimulator, coids: list[str]) -> list[str]:
    return [c for c in coids if any(o.status != "COMPLETE" for o in at_sim(sim, c))]


async def test_halted_cancels_every_open_order_at_the_exchange_and_blocks_new_ones(
    sim: LunoSimulator,
) -> None:
    seed(sim)
    engine, algo = await started(sim)
    control = engine.context.control
    try:
        resting = [
            await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D(p)))
            for p in ("980000", "970000")
        ]
        assert all(o.status is OrderStatus.PENDING for o in resting), resting
        coids = [o.client_order_id for o in resting]
        assert open_at_exchange(sim, coids) == coids

        info = await control.halt("luno-outcomes", "venue test", "s")
        assert (info["trading_state"], info["open_orders"]) == ("HALTED", 0)
        assert open_at_exchange(sim, coids) == []  # cancelled at the exchange before the answer
        refused = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("980000")))
        assert (refused.status, refused.error) == (OrderStatus.REJECTED, "RiskDenied")
        assert at_sim(sim, refused.client_order_id) == []  # never sent

        await control.resume("luno-outcomes", strategy="s")
        again = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("980000")))
        assert again.status is OrderStatus.PENDING
        assert open_at_exchange(sim, [again.client_order_id]) == [again.client_order_id]
    finally:
        await engine.stop()
