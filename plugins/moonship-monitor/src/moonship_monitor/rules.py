"""Conditions: rule-engine expressions over a strategy's state, with real types for its fields."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import rule_engine  # type: ignore[import-untyped]
from rule_engine.parser.utilities import parse_timedelta  # type: ignore[import-untyped]

#: a missing attribute is null; naive datetimes are UTC
CONTEXT = rule_engine.Context(default_value=None, default_timezone="utc")
#: fields that stay text even when they look like a number or a time
TEXT_FIELDS = frozenset({"name", "engine", "stop_reason", "algo", "markets"})

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


class Condition:
    """A compiled rule-engine expression."""

    def __init__(self, text: str) -> None:
        """ValueError with rule-engine's message if `text` is not a valid condition."""
        self.text = text
        try:
            self._rule = rule_engine.Rule(text, context=CONTEXT)
        except rule_engine.EngineError as exc:
            raise ValueError(f"invalid condition {text!r}: {exc.message}") from None

    def matches(self, values: Mapping[str, Any]) -> bool:
        """ValueError with rule-engine's message if the evaluation fails (e.g. comparing text to a number)."""
        try:
            return bool(self._rule.matches(values))
        except rule_engine.EngineError as exc:
            cause = getattr(exc, "error", None)
            raise ValueError(f"{exc.message}: {cause}" if cause else exc.message) from None


def rule_values(info: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The object a condition is evaluated on: the StrategyInfo as read from the cache (JSON, so Decimals
    and times are text) with numbers as Decimal and ISO-8601 times as aware datetimes, plus `now` (this
    poll's time) and `duration('PT5M')` (an ISO-8601 duration) unless the strategy has such fields."""
    values: dict[str, Any] = {"now": now, "duration": parse_timedelta}
    values.update(_typed_fields(info))
    return values


def _typed_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value if name in TEXT_FIELDS else _typed(value) for name, value in fields.items()}


def _typed(value: Any) -> Any:
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            return Decimal(value)
        if _DATETIME.match(value):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return value
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return value
    if isinstance(value, Mapping):
        return _typed_fields(value)
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return value
