"""ErrorTable: a venue's error answers (HTTP status, code, message) mapped onto the core taxonomy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ExchangeError, InvalidOrder, NotSupported, PostOnlyRejected

Code = int | str


@dataclass(frozen=True)
class ErrorRule:
    """Matches when every given field matches: `status`, `code` (one or several), `message` (a substring,
    case-insensitive). The error is `error(text, code=...)`; InvalidOrder gets `rule` (a name, or a function
    of the message that extracts one), NotSupported gets `rule` as its feature."""

    error: type[ExchangeError]
    status: int | None = None
    code: Code | tuple[Code, ...] | None = None
    message: str | None = None
    rule: str | Callable[[str], str] | None = None

    def matches(self, status: int, code: Code | None, lowered: str) -> bool:
        if self.status is not None and status != self.status:
            return False
        if self.code is not None:
            codes = self.code if isinstance(self.code, tuple) else (self.code,)
            if code not in codes:
                return False
        return self.message is None or self.message.lower() in lowered


class ErrorTable:
    """The first matching rule makes the error; nothing matching makes `default` (ExchangeError)."""

    def __init__(
        self, venue: str, rules: Sequence[ErrorRule], default: type[ExchangeError] = ExchangeError
    ) -> None:
        self.venue = venue
        self.rules = tuple(rules)
        self.default = default

    def error(self, status: int, code: Code | None, message: str) -> ExchangeError:
        text = f"{self.venue} {code if code is not None else f'HTTP {status}'}: {message}"
        lowered = message.lower()
        for rule in self.rules:
            if rule.matches(status, code, lowered):
                return _build(rule, text, code, message)
        return self.default(text, code=code)


def _build(rule: ErrorRule, text: str, code: Code | None, message: str) -> ExchangeError:
    name = rule.rule(message) if callable(rule.rule) else rule.rule
    if issubclass(rule.error, PostOnlyRejected):
        return rule.error(text, code=code)
    if issubclass(rule.error, InvalidOrder):
        return rule.error(text, rule=name, code=code)
    if issubclass(rule.error, NotSupported):
        return rule.error(text, feature=name or "unknown", code=code)
    return rule.error(text, code=code)
