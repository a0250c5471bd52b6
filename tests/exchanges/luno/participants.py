"""Background participants: other Luno users quoting, cancelling and taking around a drifting mid price."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from .engine import Exchange, LunoError, SimOrder, User


class Participants:
    """A few users acting on one market at `rate` actions per second (exponential gaps, seeded)."""

    def __init__(
        self,
        exchange: Exchange,
        pair: str,
        *,
        mid: str = "1000000",
        rate: float = 20.0,
        seed: int = 7,
        users: int = 3,
        max_orders: int = 60,
    ) -> None:
        self.exchange = exchange
        self.market = exchange.market(pair)
        self.rng = random.Random(seed)
        self.mid = Decimal(mid)
        self.rate = rate
        self.max_orders = max_orders
        self.users: list[User] = [
            exchange.add_user(f"participant-{pair}-{seed}-{i}", "secret",
                              {self.market.base: "1000000", self.market.counter: "1000000000000"})
            for i in range(users)
        ]
        self.actions = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(self.rate))
            self.step()

    def _open(self) -> list[SimOrder]:
        return [o for o in self.exchange.orders.values()
                if o.market is self.market and o.status != "COMPLETE" and o.user in self.users]

    def step(self) -> None:
        """One action: mostly quotes near the mid, some cancels, some trades that take liquidity."""
        rng, m = self.rng, self.market
        self.actions += 1
        self.mid = max(m.min_price * 10, self.mid + m.tick * rng.randint(-3, 3))
        user = rng.choice(self.users)
        volume = m.lot * rng.randint(int(m.min_volume / m.lot), int(m.min_volume / m.lot) * 40)
        open_orders = self._open()
        roll = rng.random()
        try:
            if roll < 0.25 or len(open_orders) > self.max_orders:
                if open_orders:
                    victim = rng.choice(open_orders)
                    self.exchange.stop(victim.user, victim.order_id)
            elif roll < 0.80:
                side = rng.choice(("BID", "ASK"))
                offset = m.tick * rng.randint(1, 25)
                price = self.mid - offset if side == "BID" else self.mid + offset
                self.exchange.post_limit(user, m.market_id, side, f"{volume:f}", f"{price:f}")
            elif roll < 0.92:
                side = rng.choice(("BID", "ASK"))
                through = m.tick * rng.randint(0, 10)
                price = self.mid + through if side == "BID" else self.mid - through
                tif = rng.choice(("GTC", "IOC"))
                self.exchange.post_limit(user, m.market_id, side, f"{volume:f}", f"{price:f}",
                                         time_in_force=tif)
            else:
                if rng.random() < 0.5:
                    self.exchange.post_market(user, m.market_id, "SELL", base_volume=f"{volume:f}")
                else:
                    counter = (volume * self.mid).quantize(Decimal("0.01"))
                    self.exchange.post_market(user, m.market_id, "BUY", counter_volume=f"{counter:f}")
        except LunoError:
            pass
