"""MonitorService over the shared cache: edge triggering, fired state, retries, start-up checks, actions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from monitor_support import (
    SMTP_PASSWORD,
    SmtpServer,
    WebhookServer,
    email_section,
    make_monitor,
    monitor_plugins,
    polls,
    publish,
    strategy_info,
    until,
)
from moonship_monitor import ActionError, Alert, AlertAction
from moonship_monitor.service import FIRED_KEY, OUTBOX_KEY, MonitorService
from pydantic import BaseModel, ConfigDict

from moonship_core import ConfigError, MemoryCache, SharedCache, hookimpl
from moonship_core.testing import free_port

pytestmark = pytest.mark.anyio

POLL = 0.02
STOPPED = "not active and start_time != null"


class Record(AlertAction):
    """Keeps what it is sent."""

    sent: ClassVar[list[Alert]] = []

    async def send(self, alert: Alert) -> None:
        Record.sent.append(alert)


class FlakySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failures: int


class Flaky(AlertAction):
    """Fails `failures` times (-1: always), then keeps what it is sent."""

    settings_model = FlakySettings
    settings: FlakySettings
    attempts: ClassVar[int] = 0
    sent: ClassVar[list[Alert]] = []

    async def send(self, alert: Alert) -> None:
        Flaky.attempts += 1
        if self.settings.failures < 0 or Flaky.attempts <= self.settings.failures:
            raise ActionError("service unavailable")
        Flaky.sent.append(alert)


class ActionsPlugin:
    @hookimpl
    def moonship_alert_actions(self) -> dict[str, type[AlertAction]]:
        return {"record": Record, "flaky": Flaky}


@pytest.fixture(autouse=True)
def _reset() -> None:
    Record.sent.clear()
    Flaky.sent.clear()
    Flaky.attempts = 0


def section(actions: list[str] | str = "record", condition: str = STOPPED, **extra: Any) -> dict[str, Any]:
    alerts = {"stopped": {"condition": condition, "actions": actions}}
    return {"poll_interval": POLL, "alerts": alerts, **extra}


def monitor(config: dict[str, Any], cache: SharedCache, **kwargs: Any) -> MonitorService:
    return make_monitor(config, cache, monitor_plugins(ActionsPlugin()), **kwargs)


async def test_fires_once_per_strategy_rearms_and_fires_again_after_a_restart(cache: SharedCache) -> None:
    await publish(cache, strategy_info("s1"), strategy_info("s2"), strategy_info("s3", engine="other"))
    service = monitor(section(), cache)
    await service.start()
    try:
        await polls(service)
        assert Record.sent == []
        await publish(cache, strategy_info("s1", active=False, stop_reason="drawdown"))
        await until(lambda: len(Record.sent) == 1)
        alert = Record.sent[0]
        assert (alert.alert, alert.condition, alert.engine) == ("stopped", STOPPED, "main")
        assert alert.strategy == "s1"
        assert alert.state["stop_reason"] == "drawdown" and alert.state["active"] is False
        await publish(cache, strategy_info("s3", engine="other", active=False))
        await until(lambda: len(Record.sent) == 2)
        await polls(service, 5)
        assert [(a.engine, a.strategy) for a in Record.sent] == [("main", "s1"), ("other", "s3")]
        assert len(await cache.hgetall(FIRED_KEY)) == 2 and await cache.hgetall(OUTBOX_KEY) == {}
        # the condition clears: re-armed; it holds again: fires again
        await publish(cache, strategy_info("s1", start_time="2026-01-01T11:00:00+00:00"))
        await polls(service)
        assert len(await cache.hgetall(FIRED_KEY)) == 1
        await publish(cache, strategy_info("s1", active=False, start_time="2026-01-01T11:00:00+00:00"))
        await until(lambda: len(Record.sent) == 3)
        # restarted and stopped again between two polls: a new start_time fires too
        await publish(cache, strategy_info("s1", active=False, start_time="2026-01-01T12:00:00+00:00"))
        await until(lambda: len(Record.sent) == 4)
        await polls(service)
        assert len(Record.sent) == 4
    finally:
        await service.stop()


async def test_fired_state_survives_a_monitor_restart(cache: SharedCache) -> None:
    await publish(cache, strategy_info("s1", active=False))
    first = monitor(section(), cache)
    await first.start()
    try:
        await until(lambda: len(Record.sent) == 1)
    finally:
        await first.stop()
    second = monitor(section(), cache)
    await second.start()
    try:
        await polls(second, 5)
        assert len(Record.sent) == 1  # not re-sent
        await publish(cache, strategy_info("s1"))
        await polls(second)
        await publish(cache, strategy_info("s1", active=False, start_time="2026-01-01T11:00:00+00:00"))
        await until(lambda: len(Record.sent) == 2)
    finally:
        await second.stop()


async def test_fired_entries_of_removed_strategies_and_alerts_go_but_not_those_of_stopped_engines(
    cache: SharedCache,
) -> None:
    await publish(cache, strategy_info("s1", active=False), strategy_info("s2", engine="other", active=False))
    service = monitor(section(), cache)
    await service.start()
    try:
        await until(lambda: len(Record.sent) == 2)
        await cache.hdel("moonship:main:strategies", "s1")  # removed from a running engine
        await cache.delete("moonship:other:heartbeat")  # engine down: it may come back as it was
        await polls(service)
        assert list(await cache.hgetall(FIRED_KEY)) == ['["stopped", "other", "s2"]']
        await cache.set("moonship:other:heartbeat", "test")
        await polls(service)
        assert len(Record.sent) == 2
    finally:
        await service.stop()
    renamed = monitor({"poll_interval": POLL, "alerts": {"halted": {"condition": STOPPED}}}, cache)
    await renamed.start()
    try:
        await polls(renamed)
    finally:
        await renamed.stop()
    assert list(await cache.hgetall(FIRED_KEY)) == ['["halted", "other", "s2"]']


async def test_alert_without_actions_warns_at_start_and_logs_when_it_triggers(
    cache: SharedCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    service = monitor(section(actions=[]), cache)
    await service.start()
    try:
        assert "alert stopped has no actions: it will only be logged" in caplog.messages
        await publish(cache, strategy_info("s1", active=False))
        await until(lambda: "alert stopped triggered for s1@main (no actions)" in caplog.messages)
        await polls(service)
        assert caplog.messages.count("alert stopped triggered for s1@main (no actions)") == 1
        assert await cache.hgetall(OUTBOX_KEY) == {}
    finally:
        await service.stop()


async def test_failing_action_is_retried_with_backoff_and_does_not_hold_up_the_others(
    cache: SharedCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    await publish(cache, strategy_info("s1", active=False))
    service = monitor(section(["flaky", "record"], flaky={"failures": 3}), cache)
    await service.start()
    try:
        await until(lambda: len(Record.sent) == 1)
        assert Flaky.sent == []
        await until(lambda: len(Flaky.sent) == 1)
        assert Flaky.attempts == 4
        failures = [m for m in caplog.messages if "flaky action failed" in m]
        assert failures == [
            f"alert stopped for s1@main: flaky action failed (attempt {n}): "
            f"ActionError: service unavailable; retrying in {POLL * 2 ** (n - 1):g}s"
            for n in (1, 2, 3)
        ]
        assert "alert stopped for s1@main: flaky action done" in caplog.messages
        await until(lambda: not service._deliveries or all(t.done() for t in service._deliveries.values()))
        assert await cache.hgetall(OUTBOX_KEY) == {}
        await polls(service)
        assert len(Flaky.sent) == 1 and len(Record.sent) == 1
    finally:
        await service.stop()


async def test_undelivered_alert_is_delivered_by_the_next_monitor(cache: SharedCache) -> None:
    await publish(cache, strategy_info("s1", active=False))
    first = monitor(section("flaky", flaky={"failures": -1}), cache)
    await first.start()
    try:
        await until(lambda: Flaky.attempts >= 2)
    finally:
        await first.stop()
    assert len(await cache.hgetall(OUTBOX_KEY)) == 1
    second = monitor(section("flaky", flaky={"failures": 0}), cache)
    await second.start()
    try:
        await until(lambda: len(Flaky.sent) == 1)
        assert Flaky.sent[0].strategy == "s1"
        await polls(second)
        assert len(Flaky.sent) == 1 and await cache.hgetall(OUTBOX_KEY) == {}
    finally:
        await second.stop()


class FlakyCache(MemoryCache):
    """A memory cache whose reads fail while `down`."""

    down = False

    async def hgetall(self, key: str) -> dict[str, Any]:
        if self.down:
            raise ConnectionError("cache unreachable")
        return await super().hgetall(key)


async def test_cache_outage_is_logged_once_and_polling_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    cache = FlakyCache()
    await publish(cache, strategy_info("s1"))
    service = monitor(section(), cache)
    await service.start()
    try:
        await polls(service)
        cache.down = True
        await publish(cache, strategy_info("s1", active=False))
        await polls(service, 5)
        failures = [r for r in caplog.records if "poll failed" in r.message]
        assert len(failures) == 1 and not failures[0].exc_info
        assert failures[0].message.startswith(f"poll failed, retrying every {POLL:g}s: ")
        assert failures[0].message.endswith("cache unreachable")
        assert Record.sent == []
        cache.down = False
        await until(lambda: len(Record.sent) == 1)
        assert "polling works again" in caplog.messages
    finally:
        await service.stop()


class SwallowingCache(MemoryCache):
    """Reads that swallow a cancellation, as asyncio.wait_for (used by redis-py) may on Python 3.11."""

    async def hgetall(self, key: str) -> dict[str, Any]:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.005)
        return await super().hgetall(key)


async def test_stop_ends_loops_that_lost_their_cancellation() -> None:
    cache = SwallowingCache()
    await publish(cache, strategy_info("s1", active=False))
    service = monitor(section("flaky", flaky={"failures": -1}), cache)
    await service.start()
    await until(lambda: Flaky.attempts >= 2)
    await asyncio.wait_for(service.stop(), 2)


async def test_condition_that_cannot_be_evaluated_is_logged_once(
    cache: SharedCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    await publish(cache, strategy_info("s1", active=False))
    config = section()
    config["alerts"]["odd"] = {"condition": "stop_reason > 5", "actions": "record"}
    service = monitor(config, cache)
    await service.start()
    try:
        await until(lambda: len(Record.sent) == 1)
        await polls(service, 5)
        assert [m for m in caplog.messages if "cannot be evaluated" in m] == [
            "alert odd: condition cannot be evaluated for s1@main: data type mismatch"
        ]
        assert [a.alert for a in Record.sent] == ["stopped"]
    finally:
        await service.stop()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"alerts": {"stopped": {"condition": "active =="}}},
         "moonship.monitor.alerts.stopped.condition: invalid condition 'active ==': syntax error at: EOF"),
        ({}, "moonship.monitor.alerts: field required"),
        (section("sms"), "moonship.monitor.alerts.stopped.actions: unknown action 'sms'; "
                         "available: email, flaky, halt, record, reduce, webhook"),
        (section("email"), "moonship.monitor.email: required by alert stopped (action 'email')"),
        (section("flaky", flaky={"failure": 1}),
         "moonship.monitor.flaky.failures: field required\nmoonship.monitor.flaky.failure: unknown property"),
        (section(emial={}), "moonship.monitor.emial: unknown property (no installed alert action 'emial')"),
        (section(email={"smtp_host": "x"}), "moonship.monitor.email.username: field required"),
    ],
)
async def test_start_up_errors_name_the_property(config: dict[str, Any], message: str) -> None:
    service = monitor(config, MemoryCache(), raw=True)
    with pytest.raises(ConfigError) as err:
        await service.start()
    assert str(err.value).startswith(message)
    await service.stop()


async def test_webhook_posts_json_with_retries_and_never_logs_its_secrets(
    cache: SharedCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    await publish(cache, strategy_info("s1", active=False, total_profit="-60.5"))
    with WebhookServer(statuses=(500, 503)) as server:
        hook = {"url": server.url, "timeout": 2, "headers": {"Authorization": "Bearer hook-secret"}}
        service = monitor(section(["webhook"], webhook=hook), cache)
        await service.start()
        try:
            await until(lambda: "alert stopped for s1@main: webhook action done" in caplog.messages)
        finally:
            await service.stop()
    assert len(server.requests) == 3
    headers, body = server.requests[-1]
    assert headers["Authorization"] == "Bearer hook-secret"
    assert headers["Content-Type"] == "application/json"
    assert {k: body[k] for k in ("alert", "condition", "engine", "strategy")} == {
        "alert": "stopped", "condition": STOPPED, "engine": "main", "strategy": "s1"
    }
    assert body["state"]["total_profit"] == "-60.5" and "hunter2" not in str(body)
    failures = [m for m in caplog.messages if "webhook action failed" in m]
    assert [m.split(": ActionError: ")[1] for m in failures] == [
        f"HTTP 500 Internal Server Error; retrying in {POLL:g}s",
        f"HTTP 503 Service Unavailable; retrying in {POLL * 2:g}s",
    ]
    assert "s3cret-token" not in caplog.text and "hook-secret" not in caplog.text


async def test_webhook_times_out_and_tries_again(
    cache: SharedCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    await publish(cache, strategy_info("s1", active=False))
    with WebhookServer(delay=1.0, slow=1) as server:
        service = monitor(section(["webhook"], webhook={"url": server.url, "timeout": 0.2}), cache)
        await service.start()
        try:
            await until(lambda: "alert stopped for s1@main: webhook action done" in caplog.messages)
        finally:
            await service.stop()
    assert any("webhook action failed (attempt 1): ActionError: no response within 0.2s" in m
               for m in caplog.messages)
    assert len(server.requests) == 2


async def test_email_is_retried_until_the_smtp_server_comes_up(
    cache: SharedCache, smtp_factory: Callable[..., SmtpServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    server = smtp_factory(free_port())
    await publish(cache, strategy_info("s1", active=False))
    service = monitor(section(["email", "record"], email=email_section(server.port)), cache)
    await service.start()
    try:
        await until(lambda: sum("email action failed" in m for m in caplog.messages) >= 3)
        assert len(Record.sent) == 1  # the other action was not held up
        await publish(cache, strategy_info("s2", active=False))  # and the monitor keeps polling
        await until(lambda: len(Record.sent) == 2)
        server.start()
        await until(lambda: len(server.messages) == 2, timeout=10)
        await polls(service, 10)
        assert sorted(m["Subject"] for m in server.messages) == [
            "Moonship alert: stopped - s1@main", "Moonship alert: stopped - s2@main"
        ]
        assert server.tls_sessions >= 2
        assert service._task is not None and not service._task.done()
    finally:
        await service.stop()
    assert SMTP_PASSWORD not in caplog.text
