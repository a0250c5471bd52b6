"""price_alert: logs a warning (and publishes `alert`) when the last price crosses `above` or `below`.

Places no orders. An example of a third-party algo: settings model, callbacks, publish."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from moonship_core import StrategyMarket, Trade, TradingAlgo


class PriceAlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled property is a config error, not ignored

    #: alert when the price rises to or above this
    above: Decimal | None = Field(default=None, gt=0)
    #: alert when the price falls to or below this
    below: Decimal | None = Field(default=None, gt=0)


class PriceAlert(TradingAlgo):
    settings_model = PriceAlertSettings
    settings: PriceAlertSettings

    async def on_start(self) -> None:
        self.alerted: str | None = None

    async def on_trade(self, market: StrategyMarket, trade: Trade) -> None:
        s = self.settings
        if s.above is not None and trade.price >= s.above:
            state = "above"
        elif s.below is not None and trade.price <= s.below:
            state = "below"
        else:
            state = None
        if state != self.alerted:
            self.alerted = state
            if state is not None:
                limit = s.above if state == "above" else s.below
                self.logger.warning("%s price %s is %s %s", market.name, trade.price, state, limit)
            self.publish(alert=state)
