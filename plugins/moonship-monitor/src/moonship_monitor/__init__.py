"""moonship-monitor: the `monitor` service (rule-engine alerts on strategy state) and its alert actions.

An action plugin subclasses `AlertAction` and returns it (or a "module:Class" reference) from its
`moonship_alert_actions` hook. The service lives in `moonship_monitor.service`, the built-in actions in
`moonship_monitor.mail` and `moonship_monitor.webhook`.
"""

from __future__ import annotations

from .alert import ActionError, Alert, AlertAction, public_state

__all__ = ["ActionError", "Alert", "AlertAction", "public_state"]
