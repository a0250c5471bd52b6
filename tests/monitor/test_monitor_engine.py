"""The monitor beside a real engine: spread_quoter on the paper client over the simulator stops on its
drawdown, and a real SMTP server on loopback (STARTTLS + AUTH) receives the alert."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from monitor_support import SMTP_PASSWORD, SMTP_USER, SmtpServer, email_section, monitor_plugins
from moonship_monitor.service import MonitorService

from moonship_core import ControlPlane, MessageBus, SharedCache, Stores
from moonship_core.config import parse_config
from moonship_core.contracts.service import ServiceContext
from moonship_core.launcher import run
from moonship_core.plugins import Plugins
from moonship_core.testing import until
from moonship_core.trading.engine import TradingEngine

POLL = 0.05
STOPPED = "not active and start_time != null"


def config(monitor: dict[str, Any]) -> dict[str, Any]:
    return {"moonship": {
        "engine": {"name": "main"},
        "markets": {"btc": {
            "client": "paper", "real_client": "sim", "symbol": "BTCUSDT",
            "balances": {"BTC": 1, "USDT": 100000}, "events_per_second": 200, "seed": 1,
        }},
        "strategies": {"quoter": {
            "algo": "spread_quoter", "auto_start": True, "markets": ["btc"], "trade_quantity": "0.01",
            "spread_bps": 4, "max_drawdown": "0.01",
        }},
        "monitor": monitor,
    }}


@pytest.mark.anyio
async def test_strategy_stopping_on_its_drawdown_mails_once_per_stop(
    smtp: SmtpServer, backend: tuple[SharedCache, MessageBus], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    monitor_section = {
        "poll_interval": POLL, "alerts": {"stopped": {"condition": STOPPED, "actions": "email"}},
        "email": email_section(smtp.port),
    }
    moonship = parse_config(config(monitor_section))
    plugins = monitor_plugins()
    sections = plugins.check(moonship)
    cache, bus = backend
    control = ControlPlane(cache, bus)

    def context(settings: Any) -> ServiceContext:
        return ServiceContext(config=moonship, settings=settings, sections=sections, registry=plugins,
                              stores=Stores(cache, bus), control=control)

    engine = TradingEngine(context({}))
    monitor = MonitorService(context(sections["monitor"]))
    await monitor.start()
    await engine.start()
    try:
        await until(lambda: len(smtp.messages) == 1, timeout=10)
        await asyncio.sleep(POLL * 10)
        assert len(smtp.messages) == 1
        mail = smtp.messages[0]
        assert mail["Subject"] == "Moonship alert: stopped - quoter@main"
        assert mail["From"] == "Moonship Monitor <moonship@example.com>"
        assert mail["To"] == "ops@example.com, cto@example.com"
        body = mail.get_payload(decode=True).decode().replace("\r\n", "\n")
        assert "Alert:     stopped\n" in body and f"Condition: {STOPPED}\n" in body
        assert "Engine:    main\n" in body and "Strategy:  quoter\n" in body
        state = json.loads(body.split("Strategy state:\n", 1)[1])
        assert state["active"] is False and state["name"] == "quoter" and state["engine"] == "main"
        assert state["stop_reason"].startswith("drawdown ")
        assert state["stop_reason"].endswith("exceeded max_drawdown 0.01")
        assert float(state["drawdown"]) > 0.01
        assert state["config"] == {"algo": "spread_quoter", "markets": ["btc"]}
        assert "trade_quantity" not in body and SMTP_PASSWORD not in body  # of the config: algo and markets
        assert smtp.logins == [(SMTP_USER, SMTP_PASSWORD)] and smtp.tls_sessions == 1

        await control.start("main", "quoter")  # it stops again on its drawdown, maybe before the next poll
        await until(lambda: len(smtp.messages) == 2, timeout=10)
        await asyncio.sleep(POLL * 10)
        assert len(smtp.messages) == 2
        assert caplog.messages.count("alert stopped for quoter@main: email action done") == 2
        assert SMTP_PASSWORD not in caplog.text
    finally:
        await engine.stop()
        await monitor.stop()


def test_entry_point_provides_the_service_and_the_actions() -> None:
    plugins = Plugins.load()
    assert plugins.resolve("services", "monitor") is MonitorService
    assert set(plugins.registries["alert_actions"]) >= {"email", "webhook", "halt", "reduce"}
    info = next(i for i in plugins.describe() if i.distribution == "moonship-monitor")
    assert info.provides == {"services": ["monitor"], "alert_actions": ["email", "halt", "reduce", "webhook"]}


def test_launcher_refuses_to_start_with_a_bad_condition(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="moonship")
    alerts = {"losing": {"condition": "total_profit <"}}
    moonship = parse_config({"moonship": {"monitor": {"alerts": alerts}}})
    assert run(moonship, monitor_plugins(), ["monitor"]) == 1
    assert (
        "start-up failed: moonship.monitor.alerts.losing.condition: "
        "invalid condition 'total_profit <': syntax error at: EOF"
    ) in caplog.messages
