"""The hook the monitor adds to Moonship's plugin system: alert actions from any plugin."""

from __future__ import annotations

from typing import Any

from moonship_core import hookspec


@hookspec
def moonship_alert_actions() -> dict[str, type[Any] | str]:  # type: ignore[empty-body]
    """AlertAction classes by name (`monitor.alerts.NAME.actions`), e.g. `{"email": EmailAction}`."""
