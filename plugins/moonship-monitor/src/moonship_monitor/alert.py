"""Alert: one firing of an alert for one strategy; AlertAction: the contract every alert action implements."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from moonship_core import MoonshipError, ServiceContext

#: field names whose values are masked wherever they appear in an alert's state
SECRET_NAME = re.compile(r"key|secret|passw|token|credential|auth", re.IGNORECASE)
MASK = "***"


class ActionError(MoonshipError):
    """An action failed; the message is safe to log (no credentials, no secret URLs)."""


@dataclass(frozen=True)
class Alert:
    """What an action receives: the alert, the strategy it fired for, and that strategy's state."""

    alert: str
    condition: str
    engine: str
    strategy: str
    time: datetime
    #: the strategy's StrategyInfo as JSON values (see `public_state`)
    state: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the webhook body, and how the monitor's outbox stores it)."""
        return {
            "alert": self.alert, "condition": self.condition, "engine": self.engine,
            "strategy": self.strategy, "time": self.time.isoformat(), "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(
            alert=data["alert"], condition=data["condition"], engine=data["engine"],
            strategy=data["strategy"], time=datetime.fromisoformat(data["time"]), state=dict(data["state"]),
        )


def public_state(info: Mapping[str, Any]) -> dict[str, Any]:
    """A strategy's state fit to send out: its runtime fields and, of its config, only `algo` and `markets`
    (the rest may hold credentials); any field named like a credential is masked."""
    state = {name: value for name, value in info.items() if name != "config"}
    config = info.get("config")
    if isinstance(config, Mapping):
        state["config"] = {name: config[name] for name in ("algo", "markets") if name in config}
    masked: dict[str, Any] = _mask(state)
    return masked


def _mask(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: MASK if SECRET_NAME.search(str(k)) else _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(item) for item in value]
    return value


class AlertAction(ABC):
    """An alert action, named in `moonship.monitor.alerts.NAME.actions` and provided by a plugin through the
    `moonship_alert_actions` hook. The monitor creates one instance per action in use."""

    #: the model of the action's own section `moonship.monitor.<action name>`; None: it takes no settings
    settings_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def bind(self, context: ServiceContext) -> None:  # noqa: B027 - optional hook
        """Called once by the monitor after creating the action: `context.control` reaches the engines
        (the `halt` and `reduce` actions use it)."""

    @abstractmethod
    async def send(self, alert: Alert) -> None:
        """Deliver one alert; raise on failure (the monitor retries with backoff until it succeeds).
        Prefer ActionError, whose message is logged as it is: never put credentials in it."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (the monitor is stopping)."""
