"""Background participants: a house account that quotes around a drifting mid, pulls quotes and takes
liquidity, so the simulated VALR has a live book and a trade tape."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from decimal import Decimal
from types import TracebackType

from .matching import Exchange, Rejected, SimOrder


class Participants:
    """`rate` actions per second on `symbol`, reproducible from `seed`."""

    def __init__(
        self,
        exchange: Exchange,
        symbol: str,
        *,
        mid: Decimal,
        rate: float = 50.0,
        seed: int = 7,
        max_orders: int = 120,
    ) -> None:
        self.exchange = exchange
        self.pair = exchange.pairs[symbol]
        self.account = exchange.account(f"house-{symbol}", house=True)
        self.mid = mid
        self.rate = rate
        self.random = random.Random(seed)
        self.max_orders = max_orders
        self.resting: deque[SimOrder] = deque()
        self.actions = 0
        self._task: asyncio.Task[None] | None = None

    def seed_book(self, levels: int = 15) -> None:
        """Quotes on both sides so the book is never empty."""
        tick = self.pair.tick
        for i in range(1, levels + 1):
            self._quote("buy", self.mid - tick * i)
            self._quote("sell", self.mid + tick * i)

    def _size(self) -> Decimal:
        return Decimal(self.random.randint(1, 400)) * Decimal("0.0001") + self.pair.min_base

    def _quote(self, side: str, price: Decimal) -> None:
        if price <= 0:
            return
        try:
            order = self.exchange.place(
                self.account,
                self.pair.symbol,
                side,
                kind="limit",
                quantity=self._size(),
                price=price,
                post_only=True,
            )
        except Rejected:
            return  # the post-only quote would have crossed
        if order.is_open:
            self.resting.append(order)

    def step(self) -> None:
        """One random action: quote, pull, take or move the mid."""
        self.actions += 1
        r = self.random.random()
        tick = self.pair.tick
        if r < 0.5:
            side = self.random.choice(("buy", "sell"))
            offset = tick * self.random.randint(1, 25)
            self._quote(side, self.mid - offset if side == "buy" else self.mid + offset)
        elif r < 0.8:
            self._pull(self.random.randrange(len(self.resting)) if self.resting else None)
        elif r < 0.95:
            side = self.random.choice(("buy", "sell"))
            if self.random.random() < 0.5:
                self.exchange.place(
                    self.account, self.pair.symbol, side, kind="market", quantity=self._size()
                )
            else:
                reach = tick * self.random.randint(0, 5)
                price = self.mid + reach if side == "buy" else self.mid - reach
                if price > 0:
                    self.exchange.place(
                        self.account,
                        self.pair.symbol,
                        side,
                        kind="limit",
                        quantity=self._size(),
                        price=price,
                        time_in_force="IOC",
                    )
        else:
            self.mid += tick * self.random.randint(-3, 3)
        while len(self.resting) > self.max_orders:
            self._pull(0)
        book = self.exchange.books[self.pair.symbol]
        for side in (book.bids, book.asks):
            if len(side.levels) < 5:
                self.seed_book(5)
                break

    def _pull(self, index: int | None) -> None:
        if index is None:
            return
        order = self.resting[index]
        del self.resting[index]
        if order.is_open:
            self.exchange.cancel(self.account, self.pair.symbol, order_id=order.id)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start, done = loop.time(), 0
        while True:
            # as many actions as the rate asks for since the start (catches up after a slow tick)
            due = int((loop.time() - start) * self.rate)
            for _ in range(min(due - done, 100)):
                self.step()
            done = due
            await asyncio.sleep(min(0.02, 1 / self.rate))

    async def __aenter__(self) -> Participants:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
