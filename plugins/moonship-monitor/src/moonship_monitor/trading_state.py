"""The `halt` and `reduce` actions: the kill switch pulled by an alert. They put the strategy the alert fired
for (or, with `engine: true`, its whole engine) in trading state HALTED or REDUCING, through the control
plane, and are done once the engine answers that the state is in force."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from moonship_core import ControlError, ControlPlane, EngineUnavailable, ServiceContext

from .alert import ActionError, Alert, AlertAction


class TradingStateSettings(BaseModel):
    """`moonship.monitor.halt` and `moonship.monitor.reduce` (both optional)."""

    model_config = ConfigDict(extra="forbid")

    #: apply the state to the alert's engine, not only to its strategy
    engine: bool = False
    #: the reason the state shows (default: the alert's name and condition)
    reason: str | None = Field(default=None, max_length=500)


class TradingStateAction(AlertAction):
    settings_model = TradingStateSettings
    settings: TradingStateSettings
    #: the trading state the action puts its target in
    state: ClassVar[str]
    control: ControlPlane | None = None

    def bind(self, context: ServiceContext) -> None:
        self.control = context.control

    async def send(self, alert: Alert) -> None:
        if self.control is None:
            raise ActionError("not bound to a control plane")
        reason = self.settings.reason or f"monitor alert {alert.alert}: {alert.condition}"
        strategy = None if self.settings.engine else alert.strategy
        try:
            await self.control.trading_state(alert.engine, self.state, reason[:500], strategy)
        except EngineUnavailable:
            raise  # the engine may come back (and should then be halted): retried
        except ControlError as exc:
            if exc.status == 404:  # the strategy is gone: nothing left to halt
                return
            raise ActionError(f"engine {alert.engine} refused: {exc}") from None


class HaltAction(TradingStateAction):
    """HALTED: the open orders are cancelled and no new ones pass."""

    state = "HALTED"


class ReduceAction(TradingStateAction):
    """REDUCING: only orders that reduce the position pass."""

    state = "REDUCING"
