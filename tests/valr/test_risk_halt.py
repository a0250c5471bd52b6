"""The kill switch on VALR: HALTED cancels a strategy's resting orders at the exchange before the command is
answered and refuses new ones until resumed."""

from __future__ import annotations

import pytest
from exchanges.valr import ValrSimulator

from moonship_core import OrderRequest, OrderStatus, Side

from .harness import D
from .test_engine_outcomes import at_sim, engine_on_valr, place

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def open_at_exchange(sim: ValrSimulator, coids: list[str]) -> list[str]:
    return [c for c in coids if any(o.is_open for o in at_sim(sim, c))]


async def test_halted_cancels_every_open_order_at_the_exchange_and_blocks_new_ones() -> None:
    async with engine_on_valr() as (sim, engine, algo, house):
        control = engine.context.control
        resting = [
            await place(sim, house, algo, OrderRequest.limit(Side.BUY, D("0.01"), D(p)))
            for p in (990_000, 980_000)
        ]
        assert all(o.status is OrderStatus.PENDING for o in resting), resting
        coids = [o.client_order_id for o in resting]
        assert open_at_exchange(sim, coids) == coids

        info = await control.halt("valr-outcomes", "venue test", "s")
        assert (info["trading_state"], info["open_orders"]) == ("HALTED", 0)
        assert open_at_exchange(sim, coids) == []  # cancelled at the exchange before the answer
        refused = await place(sim, house, algo, OrderRequest.limit(Side.BUY, D("0.01"), D(990_000)))
        assert (refused.status, refused.error) == (OrderStatus.REJECTED, "RiskDenied")
        assert at_sim(sim, refused.client_order_id) == []  # never sent

        await control.resume("valr-outcomes", strategy="s")
        again = await place(sim, house, algo, OrderRequest.limit(Side.BUY, D("0.01"), D(990_000)))
        assert again.status is OrderStatus.PENDING
        assert open_at_exchange(sim, [again.client_order_id]) == [again.client_order_id]
