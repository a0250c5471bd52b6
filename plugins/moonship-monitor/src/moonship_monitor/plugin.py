"""Entry point `moonship.monitor`: the monitor service and the built-in alert actions.

Given as references, so a process that does not run the monitor never imports it.
"""

from __future__ import annotations

from moonship_core import hookimpl

from . import hooks

#: the monitor declares the hook its alert actions are registered by
moonship_hookspecs = hooks


@hookimpl
def moonship_services() -> dict[str, str]:
    return {"monitor": "moonship_monitor.service:MonitorService"}


@hookimpl
def moonship_alert_actions() -> dict[str, str]:
    return {
        "email": "moonship_monitor.mail:EmailAction",
        "webhook": "moonship_monitor.webhook:WebhookAction",
        "halt": "moonship_monitor.trading_state:HaltAction",
        "reduce": "moonship_monitor.trading_state:ReduceAction",
    }
