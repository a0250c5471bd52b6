"""moonship-monitor: the `monitor` service (rule-engine alerts on strategy state) and its alert actions.

An action plugin subclasses `AlertAction` and returns it from its `moonship_alert_actions` hook.
"""

from __future__ import annotations

from .alert import ActionError, Alert, AlertAction, public_state
from .mail import EmailAction, EmailSettings
from .service import MonitorService
from .settings import AlertSettings, MonitorSettings
from .webhook import WebhookAction, WebhookSettings

__all__ = [
    "ActionError", "Alert", "AlertAction", "AlertSettings", "EmailAction", "EmailSettings", "MonitorService",
    "MonitorSettings", "WebhookAction", "WebhookSettings", "public_state",
]
