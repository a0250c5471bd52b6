"""The `moonship.monitor` section."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from .mail import EmailSettings, as_list
from .rules import Condition
from .webhook import WebhookSettings

SECTION = "moonship.monitor"


class AlertSettings(BaseModel):
    """`moonship.monitor.alerts.NAME`."""

    model_config = ConfigDict(extra="forbid")

    #: a rule-engine expression over a strategy's StrategyInfo, e.g. `total_profit < -50`
    condition: str
    #: action names (`email`, `webhook`, `halt`, `reduce`, a plugin's); one name or a list; none: logged only
    actions: Annotated[list[str], BeforeValidator(as_list)] = Field(default_factory=list)

    @field_validator("condition")
    @classmethod
    def _valid_condition(cls, text: str) -> str:
        Condition(text)
        return text

    @field_validator("actions")
    @classmethod
    def _unique(cls, actions: list[str]) -> list[str]:
        return list(dict.fromkeys(actions))


class MonitorSettings(BaseModel):
    """`moonship.monitor`. Other keys are the sections of actions from other plugins (checked at start)."""

    model_config = ConfigDict(extra="allow")

    #: seconds between two polls of the shared cache
    poll_interval: float = Field(default=5.0, gt=0)
    #: alerts by name
    alerts: dict[str, AlertSettings] = Field(min_length=1)
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None

    def action_section(self, action: str) -> Any:
        """The section `moonship.monitor.<action>` (None if absent)."""
        if action in type(self).model_fields:
            return getattr(self, action)
        return (self.model_extra or {}).get(action)
