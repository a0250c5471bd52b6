"""Entry point `moonship.monitor`: the monitor service and the built-in alert actions."""

from __future__ import annotations

from moonship_core import Service, hookimpl

from .alert import AlertAction
from .mail import EmailAction
from .service import MonitorService
from .webhook import WebhookAction


@hookimpl
def moonship_services() -> dict[str, type[Service]]:
    return {"monitor": MonitorService}


@hookimpl
def moonship_alert_actions() -> dict[str, type[AlertAction]]:
    return {"email": EmailAction, "webhook": WebhookAction}
