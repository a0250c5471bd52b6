"""MonitorService: polls every engine's strategies, fires alerts on rule-engine conditions, runs actions.

State in the shared cache (any backend), so a restarted monitor neither re-sends nor loses alerts:

- `moonship:monitor:fired` hash: `["alert", "engine", "strategy"]` (JSON) -> {"time", "start_time"} for each
  alert that fired and has not re-armed yet.
- `moonship:monitor:outbox` hash: delivery id -> {"action", "alert": Alert.to_dict()} for each action not yet
  done. The monitor works through it, retrying each failed delivery with exponential backoff.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from moonship_core import (
    FIRED_ALERTS_KEY,
    ConfigError,
    MoonshipError,
    Registry,
    Service,
    ServiceContext,
    utc_now,
    validate_model,
)

from .alert import Alert, AlertAction, public_state
from .rules import Condition, rule_values
from .settings import SECTION, MonitorSettings

#: the registry kind of alert actions (filled by the `moonship_alert_actions` hook, see hooks.py)
ACTIONS = "alert_actions"
FIRED_KEY = FIRED_ALERTS_KEY
OUTBOX_KEY = "moonship:monitor:outbox"
#: the longest wait between two attempts of a failing delivery (the first wait is one poll interval)
MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class _Alert:
    name: str
    condition: Condition
    actions: tuple[str, ...]


class MonitorService(Service):
    """Edge-triggered alerts per (alert, engine, strategy): an alert fires once when its condition becomes
    true and re-arms when it is false again, or when the strategy was restarted (its start_time changed)."""

    name = "monitor"
    settings_model = MonitorSettings

    def __init__(self, context: ServiceContext) -> None:
        super().__init__(context)
        self.interval = 5.0
        self.alerts: list[_Alert] = []
        self.actions: dict[str, AlertAction] = {}
        self._task: asyncio.Task[None] | None = None
        self._deliveries: dict[str, asyncio.Task[None]] = {}
        self._poll_problem: str | None = None
        self._failing: set[str] = set()  # fired keys whose condition could not be evaluated

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        settings = self.context.settings
        if not isinstance(settings, MonitorSettings):
            settings = validate_model(MonitorSettings, settings, SECTION)
        self.interval = settings.poll_interval
        self.alerts = [
            _Alert(name, Condition(alert.condition), tuple(alert.actions))
            for name, alert in settings.alerts.items()
        ]
        self.actions = self._build_actions(settings)
        for alert in self.alerts:
            if not alert.actions:
                self.logger.warning("alert %s has no actions: it will only be logged", alert.name)
        self._task = asyncio.create_task(self._run(), name="monitor")
        self.logger.info("monitor started: %d alerts, polling every %gs", len(self.alerts), self.interval)

    def _build_actions(self, settings: MonitorSettings) -> dict[str, AlertAction]:
        registry = self.context.registry.names(ACTIONS)
        for key in (settings.model_extra or {}):
            if key not in registry:
                raise ConfigError(f"{SECTION}.{key}: unknown property (no installed alert action {key!r})")
        actions: dict[str, AlertAction] = {}
        for alert in self.alerts:
            for name in alert.actions:
                if name in actions:
                    continue
                if name not in registry:
                    raise ConfigError(
                        f"{SECTION}.alerts.{alert.name}.actions: unknown action {name!r}; "
                        f"available: {', '.join(sorted(registry)) or 'none'}"
                    )
                action_class = _action_class(self.context.registry, name, alert.name)
                section = settings.action_section(name)
                model = action_class.settings_model
                if model is not None and section is None:
                    try:  # a model with a default for everything needs no section
                        section = validate_model(model, {}, f"{SECTION}.{name}")
                    except ConfigError:
                        raise ConfigError(
                            f"{SECTION}.{name}: required by alert {alert.name} (action {name!r})"
                        ) from None
                if model is not None and not isinstance(section, model):
                    section = validate_model(model, section, f"{SECTION}.{name}")
                actions[name] = action_class(section)
                actions[name].bind(self.context)
        return actions

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._deliveries.values()) if t is not None]
        if not tasks and not self.actions:
            return
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._deliveries.clear()
        actions, self.actions = self.actions, {}
        for name, action in actions.items():
            try:
                await action.close()
            except Exception as exc:
                self.logger.warning("closing the %s action failed: %s", name, exc)
        self.logger.info("monitor stopped")

    # ------------------------------------------------------------------ polling
    async def _run(self) -> None:
        """Poll until stopped; no error (a cache outage, a bug) ends the loop."""
        while True:
            try:
                await self._poll()
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
                if problem != self._poll_problem:
                    expected = isinstance(exc, MoonshipError | OSError)  # e.g. a cache outage: no traceback
                    self.logger.error("poll failed, retrying every %gs: %s", self.interval, problem,
                                      exc_info=not expected)
                    self._poll_problem = problem
            else:
                if self._poll_problem is not None:
                    self.logger.info("polling works again")
                    self._poll_problem = None
            _raise_if_cancelled()
            await asyncio.sleep(self.interval)

    async def _poll(self) -> None:
        cache, control = self.context.cache, self.context.control
        now = utc_now()
        engines = set(await control.engines())
        infos = await control.strategies()
        fired: dict[str, Any] = await cache.hgetall(FIRED_KEY)
        holds: dict[str, bool | None] = {}  # fired key -> the condition holds (None: could not be evaluated)
        new_fired: dict[str, Any] = {}
        outbox: dict[str, Any] = {}
        triggered: list[Alert] = []
        for info in infos:
            engine, strategy = str(info.get("engine")), str(info.get("name"))
            values = rule_values(info, now)
            for alert in self.alerts:
                key = json.dumps([alert.name, engine, strategy])
                holds[key] = self._evaluate(alert, values, key)
                start_time = info.get("start_time")
                if not holds[key] or (key in fired and fired[key].get("start_time") == start_time):
                    continue
                event = Alert(alert.name, alert.condition.text, engine, strategy, now, public_state(info))
                triggered.append(event)
                new_fired[key] = {"time": now, "start_time": start_time}
                outbox.update(
                    {uuid.uuid4().hex: {"action": name, "alert": event.to_dict()} for name in alert.actions}
                )
        self._failing.intersection_update(holds)
        names = {alert.name: alert for alert in self.alerts}
        rearmed = [key for key in fired if _rearms(json.loads(key), names, engines, holds.get(key, False))]
        if outbox:  # before the fired state: if that write fails, the alert fires again (never lost)
            await cache.hset(OUTBOX_KEY, outbox)
        if new_fired:
            await cache.hset(FIRED_KEY, new_fired)
        for event in triggered:
            actions = names[event.alert].actions
            self.logger.info("alert %s triggered for %s@%s (%s)", event.alert, event.strategy, event.engine,
                             f"actions: {', '.join(actions)}" if actions else "no actions")
        if rearmed:
            await cache.hdel(FIRED_KEY, *rearmed)
        self._deliver(await cache.hgetall(OUTBOX_KEY))

    def _evaluate(self, alert: _Alert, values: dict[str, Any], key: str) -> bool | None:
        """Whether the condition holds; None (logged once while it lasts) if it cannot be evaluated."""
        try:
            holds = alert.condition.matches(values)
        except ValueError as exc:
            if key not in self._failing:
                self._failing.add(key)
                _, engine, strategy = json.loads(key)
                self.logger.warning(
                    "alert %s: condition cannot be evaluated for %s@%s: %s", alert.name, strategy, engine, exc
                )
            return None
        self._failing.discard(key)
        return holds

    # ------------------------------------------------------------------ delivery
    def _deliver(self, outbox: dict[str, Any]) -> None:
        """Start a delivery for each outbox entry that has none: new ones, and those of a previous run. A
        finished delivery is forgotten only once `outbox` (which may predate its removal) no longer has it."""
        for delivery_id, task in list(self._deliveries.items()):
            if task.done() and delivery_id not in outbox:
                del self._deliveries[delivery_id]
        for delivery_id, entry in outbox.items():
            if delivery_id not in self._deliveries:
                task = asyncio.create_task(self._delivery(delivery_id, entry), name=f"monitor:{delivery_id}")
                self._deliveries[delivery_id] = task

    async def _delivery(self, delivery_id: str, entry: dict[str, Any]) -> None:
        """Run one action for one alert until it succeeds, then remove it from the outbox."""
        name = str(entry.get("action"))
        action = self.actions.get(name)
        try:
            alert = Alert.from_dict(entry["alert"])
        except (KeyError, TypeError, ValueError):
            action = None
            about = f"outbox entry {delivery_id}"
        else:
            about = f"alert {alert.alert} for {alert.strategy}@{alert.engine}"
        if action is None:
            self.logger.warning("%s: dropping its %s action, which this monitor cannot run", about, name)
        else:
            await self._retry(lambda: action.send(alert), f"{about}: {name} action")
            self.logger.info("%s: %s action done", about, name)
        await self._retry(lambda: self.context.cache.hdel(OUTBOX_KEY, delivery_id), f"{about}: outbox update")

    async def _retry(self, attempt: Callable[[], Awaitable[object]], what: str) -> None:
        """Await `attempt()` until it succeeds, waiting one poll interval after the first failure and twice as
        long after each further one (at most MAX_BACKOFF); each failure is logged."""
        delay = self.interval
        failures = 0
        while True:
            try:
                await attempt()
                return
            except Exception as exc:
                failures += 1
                self.logger.warning("%s failed (attempt %d): %s: %s; retrying in %gs", what, failures,
                                    type(exc).__name__, exc, delay)
            _raise_if_cancelled()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)


def _raise_if_cancelled() -> None:
    """Raise CancelledError if this task was cancelled: on Python 3.11, asyncio.wait_for (used by redis-py)
    can swallow a cancellation, and the loops here must still end when the monitor stops."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _action_class(registry: Registry, name: str, alert: str) -> type[AlertAction]:
    """The class of action `name` (imported now if its plugin registered a reference)."""
    where = f"{SECTION}.alerts.{alert}.actions"
    try:
        entry = registry.resolve(ACTIONS, name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not issubclass(entry, AlertAction):
        raise ConfigError(f"{where}: action {name!r} is not an AlertAction class")
    return entry


def _rearms(key: list[str], alerts: Mapping[str, _Alert], engines: set[str], holds: bool | None) -> bool:
    """Whether a fired entry is dropped: its alert is no longer configured, or its engine is running and the
    condition is false or the strategy is gone. It stays while the engine is down (it may come back in the
    same state) or while the condition cannot be evaluated (`holds` None)."""
    alert, engine, _ = key
    return alert not in alerts or (engine in engines and holds is False)
