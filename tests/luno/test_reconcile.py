"""A Luno market reconciles with orders it has no record of: one that carries our client order id prefix
but is not in the journal (a placement whose record was lost) is cancelled, adopted or left alone as
moonship.journal.unknown_orders says; anyone else's order is never touched."""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import partial
from typing import Literal

import pytest
from exchanges.luno import LunoSimulator
from moonship_luno.client import LunoClient

from moonship_core import ClientContext, LiveClock, MarketConfig
from moonship_core.model import new_client_order_id
from moonship_core.plugins import Plugins
from moonship_core.stores.memory import MemoryJournal
from moonship_core.trading.market import Market
from moonship_core.trading.orders import OrderManager
from moonship_core.trading.portfolio import Portfolio

from .conftest import KEY, PAIR, settings_for

pytestmark = pytest.mark.anyio
D = Decimal


@pytest.mark.parametrize("policy", ["cancel", "adopt", "ignore"])
async def test_our_orders_unknown_to_the_journal(
    sim: LunoSimulator, policy: Literal["cancel", "adopt", "ignore"]
) -> None:
    user = sim.exchange.users[KEY]
    coid = new_client_order_id()
    ours = sim.exchange.post_limit(user, PAIR, "BID", "0.01", "900000.00", client_order_id=coid)
    theirs = sim.exchange.post_limit(user, PAIR, "BID", "0.01", "900100.00", client_order_id="by-hand-1")
    context = ClientContext(
        market_name="xbt",
        config=MarketConfig.model_validate({"client": "luno", "symbol": PAIR}),
        settings=settings_for(sim),
        resolve_client=partial(Plugins.load(entry_points=False).resolve, "market_clients"),
        shared={},
        logger=logging.getLogger("moonship.market.xbt"),
    )
    orders = OrderManager(MemoryJournal(), Portfolio(), LiveClock(), unknown_orders=policy)
    market = Market("xbt", context.config, LunoClient, context, orders)
    await market.open()
    try:
        assert theirs.status != "COMPLETE"  # not ours: never touched
        if policy == "cancel":
            assert ours.status == "COMPLETE" and ours.base == 0 and market.open_orders() == []
        elif policy == "adopt":
            (adopted,) = market.open_orders()
            assert (adopted.client_order_id, adopted.id) == (ours.client_order_id, ours.order_id)
            assert adopted.quantity == D("0.01") and orders.owner_of(ours.client_order_id) is None
        else:
            assert ours.status != "COMPLETE" and market.open_orders() == []
    finally:
        await market.close()
