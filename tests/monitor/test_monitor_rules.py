"""Conditions over typed strategy state, the settings model, and what an alert may reveal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from monitor_support import strategy_info
from moonship_monitor import public_state
from moonship_monitor.rules import Condition, rule_values
from moonship_monitor.settings import MonitorSettings

from moonship_core import ConfigError
from moonship_core.config import parse_config, validate_sections

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def holds(condition: str, **fields: Any) -> bool:
    return Condition(condition).matches(rule_values(strategy_info(**fields), NOW))


def test_fields_get_real_types() -> None:
    info = strategy_info(total_profit="-12.5", drawdown="3E+1", stop_reason="2026-01-01T00:00")
    values = rule_values(info, NOW)
    assert values["active"] is True
    assert values["total_profit"] == Decimal("-12.5") and values["drawdown"] == Decimal("30")
    assert values["start_time"] == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert values["last_trade_profit"] is None
    assert values["stop_reason"] == "2026-01-01T00:00"  # text fields stay text
    assert values["config"]["markets"] == ["btc"] and values["config"]["algo"] == "spread_quoter"
    assert values["now"] == NOW


@pytest.mark.parametrize(
    ("condition", "fields", "expected"),
    [
        ("not active and start_time != null", {"active": False}, True),
        ("not active and start_time != null", {"active": False, "start_time": None}, False),
        ("not active and start_time != null", {}, False),
        ("total_profit < -50", {"total_profit": "-50.01"}, True),
        ("total_profit < -50", {"total_profit": "-50"}, False),
        ("engine == 'main' and update_time < now - duration('PT5M')",
         {"update_time": (NOW - timedelta(minutes=6)).isoformat()}, True),
        ("engine == 'main' and update_time < now - duration('PT5M')",
         {"update_time": (NOW - timedelta(minutes=4)).isoformat()}, False),
        ("update_time < $now - t'PT5M'", {"update_time": "2020-01-01T00:00:00"}, True),  # naive: UTC
        ("drawdown > 0.5", {"drawdown": "0.75"}, True),
        ("no_such_field == null", {}, True),
        ("config['algo'] == 'spread_quoter' and 'btc' in config['markets']", {}, True),
        ("name == '007'", {"name": "007"}, True),
    ],
)
def test_conditions(condition: str, fields: dict[str, Any], expected: bool) -> None:
    assert holds(condition, **fields) is expected


def test_evaluation_error_carries_rule_engine_message() -> None:
    with pytest.raises(ValueError, match="data type mismatch"):
        holds("name < 5")
    with pytest.raises(ValueError, match="function call failed"):
        holds("update_time < now - duration('soon')")


def test_bad_condition_names_the_alert_and_the_rule_engine_message() -> None:
    config = parse_config({"moonship": {"monitor": {"alerts": {"stopped": {"condition": "not active and"}}}}})
    with pytest.raises(ConfigError) as err:
        validate_sections(config, {"monitor": MonitorSettings})
    assert str(err.value) == (
        "moonship.monitor.alerts.stopped.condition: invalid condition 'not active and': syntax error at: EOF"
    )


def test_settings_defaults_and_shapes() -> None:
    settings = MonitorSettings.model_validate({
        "alerts": {"a": {"condition": "not active", "actions": "email"}, "b": {"condition": "active"}},
        "email": {"smtp_host": "mail", "username": "u", "password": "p", "from": "m@x.io", "to": "ops@x.io"},
    })
    assert settings.poll_interval == 5
    assert settings.alerts["a"].actions == ["email"] and settings.alerts["b"].actions == []
    assert settings.email is not None
    assert settings.email.smtp_port == 587 and settings.email.to == ["ops@x.io"]
    assert "p" not in repr(settings.email.password)
    assert MonitorSettings.model_validate({"poll_interval": 0.05, "alerts": {"a": {"condition": "x"}}})
    for bad in ({"poll_interval": 0, "alerts": {"a": {"condition": "x"}}}, {"alerts": {}}, {}):
        with pytest.raises(ValueError):
            MonitorSettings.model_validate(bad)


def test_public_state_drops_config_and_masks_credentials() -> None:
    info = strategy_info(total_profit="-60", session_token="abc", nested={"api_key": "k", "size": "1"})
    state = public_state(info)
    assert state["config"] == {"algo": "spread_quoter", "markets": ["btc"]}
    assert state["session_token"] == "***" and state["nested"] == {"api_key": "***", "size": "1"}
    assert state["total_profit"] == "-60" and state["engine"] == "main"
    assert "hunter2" not in repr(state)
    assert info["config"]["api_secret"] == "hunter2"  # the input is left alone
