"""A VALR market reconciles with orders it has no record of: one that carries our client order id prefix
but is not in the journal (a placement whose record was lost) is cancelled, adopted or left alone as
moonship.journal.unknown_orders says; anyone else's order is never touched."""

from __future__ import annotations

from typing import Literal

import pytest
from exchanges.valr import Participants

from moonship_core.model import new_client_order_id

from .harness import API_KEY, D, make_market, venue

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("policy", ["cancel", "adopt", "ignore"])
async def test_our_orders_unknown_to_the_journal(policy: Literal["cancel", "adopt", "ignore"]) -> None:
    async with venue() as (sim, server):
        Participants(sim.exchange, "BTCZAR", mid=D(1_000_000)).seed_book(5)
        account = sim.account(API_KEY)
        ours = sim.exchange.place(
            account, "BTCZAR", "buy", kind="limit", quantity=D("0.01"), price=D(900_000),
            customer_order_id=new_client_order_id(),
        )
        theirs = sim.exchange.place(
            account, "BTCZAR", "buy", kind="limit", quantity=D("0.01"), price=D(900_001),
            customer_order_id="by-hand-1",
        )
        market, _ = make_market(server, unknown_orders=policy)
        await market.open()
        try:
            assert theirs.is_open  # not ours: never touched
            if policy == "cancel":
                assert ours.status == "Cancelled" and market.open_orders() == []
            elif policy == "adopt":
                (adopted,) = market.open_orders()
                assert (adopted.client_order_id, adopted.id) == (ours.customer_order_id, ours.id)
                assert adopted.quantity == D("0.01")
                assert market.orders.owner_of(ours.customer_order_id) is None
            else:
                assert ours.is_open and market.open_orders() == []
        finally:
            await market.close()
