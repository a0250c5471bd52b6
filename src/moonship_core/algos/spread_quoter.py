"""spread_quoter: keeps one post-only bid and one ask around the mid, replacing them as the mid moves.

Stops itself, with the reason, when its drawdown (peak-to-current of realised plus unrealised profit at the
mid) exceeds max_drawdown.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from ..contracts.algo import StrategyMarket, TradingAlgo
from ..model import MarketStatus, Order, OrderRequest, Side


class SpreadQuoterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: base quantity of each bid and ask
    trade_quantity: Decimal = Field(gt=0)
    #: distance between our bid and ask, in basis points of the mid
    spread_bps: Decimal = Field(default=Decimal(20), gt=0)
    #: leave a quote alone until the target price moves this far from it (default: a quarter of spread_bps)
    requote_bps: Decimal | None = Field(default=None, ge=0)
    #: no bid above this long position, no ask below minus this (default: 10 x trade_quantity)
    max_position: Decimal | None = Field(default=None, gt=0)
    #: stop when profit falls this far (quote currency) below its peak
    max_drawdown: Decimal | None = Field(default=None, gt=0)


class SpreadQuoter(TradingAlgo):
    settings_model = SpreadQuoterSettings
    settings: SpreadQuoterSettings

    async def on_start(self) -> None:
        self.quotes: dict[Side, Order | None] = {Side.BUY: None, Side.SELL: None}
        self.peak = Decimal(0)
        self.drawdown = Decimal(0)
        # after a restart the quotes that survived are ours again: keep one per side, cancel any extra
        for order in self.market.open_orders:
            if self.quotes[order.side] is None:
                self.quotes[order.side] = order
            else:
                await self.market.cancel_order(order)

    async def on_order_book(self, market: StrategyMarket) -> None:
        mid = market.book.mid
        if mid is None or market.status is not MarketStatus.OPEN:
            return
        if self._check_drawdown(market, mid):
            return
        s = self.settings
        half = mid * s.spread_bps / Decimal(20000)
        position = self._position(market)
        limit = s.max_position if s.max_position is not None else s.trade_quantity * 10
        await self._quote(market, Side.BUY, mid - half, position < limit)
        await self._quote(market, Side.SELL, mid + half, position > -limit)

    async def _quote(self, market: StrategyMarket, side: Side, price: Decimal, wanted: bool) -> None:
        current = self.quotes[side]
        if current is not None:
            s = self.settings
            tolerance = price * (s.requote_bps if s.requote_bps is not None else s.spread_bps / 4) / 10000
            if wanted and current.price is not None and abs(current.price - price) <= tolerance:
                return
            current = await market.cancel_order(current)
            if not current.status.is_final:  # unconfirmed: quote again once on_order_update says it ended
                self.quotes[side] = current
                return
            self.quotes[side] = None
        if not wanted:
            return
        request = OrderRequest.limit(side, self.settings.trade_quantity, price, post_only=True)
        order = await market.place_order(request)
        # a rejection (e.g. post-only: the book moved through our price) quotes again on the next update
        self.quotes[side] = None if order.status.is_final else order

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        current = self.quotes[order.side]
        if current is not None and current.client_order_id == order.client_order_id:
            self.quotes[order.side] = None if order.status.is_final else order
        if order.fills:
            mid = market.book.mid
            if mid is not None:
                self._check_drawdown(market, mid)

    async def on_stop(self) -> None:
        for order in list(self.market.open_orders):
            await self.market.cancel_order(order)

    def _position(self, market: StrategyMarket) -> Decimal:
        return market.position.quantity

    def _check_drawdown(self, market: StrategyMarket, mid: Decimal) -> bool:
        position = market.position
        equity = position.realized + position.unrealized(mid)
        self.peak = max(self.peak, equity)
        drawdown = self.peak - equity
        if drawdown != self.drawdown:
            self.drawdown = drawdown
            self.publish(drawdown=drawdown, equity=equity)
        limit = self.settings.max_drawdown
        if limit is not None and drawdown > limit:
            self.stop(f"drawdown {drawdown:.2f} exceeded max_drawdown {limit}")
            return True
        return False
