"""One error taxonomy: clients map exchange codes onto it, strategies catch by class."""

from __future__ import annotations


class MoonshipError(Exception):
    """Base of every error Moonship raises on purpose."""


class ConfigError(MoonshipError):
    """Invalid configuration; the message names the property path and the problem."""


class ExchangeError(MoonshipError):
    """The exchange refused a request."""

    def __init__(self, message: str, *, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class InsufficientFunds(ExchangeError):
    """Not enough balance for the order."""


class InvalidOrder(ExchangeError):
    """The order breaks a rule of the market; `rule` names it (e.g. "min_notional")."""

    def __init__(self, message: str, *, rule: str | None = None, code: int | str | None = None) -> None:
        super().__init__(message, code=code)
        self.rule = rule


class PostOnlyRejected(InvalidOrder):
    """A post-only order would have taken liquidity."""

    def __init__(
        self, message: str = "post-only order would take liquidity", *, code: int | str | None = None
    ) -> None:
        super().__init__(message, rule="post_only", code=code)


class OrderNotFound(ExchangeError):
    """No such order."""


class AuthenticationError(ExchangeError):
    """Missing, wrong or unauthorised API credentials."""


class MarketClosed(ExchangeError):
    """The market does not accept this request in its current status."""


class DuplicateClientOrderId(ExchangeError):
    """The venue already has an order with this client order id (a retried request, or a reused id)."""


class NotSupported(ExchangeError):
    """The venue (or this client of it) lacks `feature`, e.g. "post_only" or "time_in_force:FOK"."""

    def __init__(self, message: str, *, feature: str, code: int | str | None = None) -> None:
        super().__init__(message, code=code)
        self.feature = feature


class RiskDenied(MoonshipError):
    """The risk layer refused an order before it reached the exchange; `rule` names the limit (e.g.
    "max_position") and the message gives the numbers."""

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class NetworkError(MoonshipError):
    """The request may not have reached the exchange."""


class RateLimited(NetworkError):
    """The exchange asked us to slow down; retry no earlier than `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeout(NetworkError):
    """No answer in time."""


class OrderStatusUnknown(NetworkError):
    """An order request was sent but not confirmed: query it before assuming anything."""

    def __init__(self, message: str, *, client_order_id: str) -> None:
        super().__init__(message)
        self.client_order_id = client_order_id


class BookGap(MoonshipError):
    """An order book update does not follow the previous one: resync from a snapshot."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"order book gap: expected update {expected}, got {got}")
        self.expected = expected
        self.got = got


class ControlError(MoonshipError):
    """A control command failed; `status` is the HTTP-like status the API maps it to."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class EngineUnavailable(ControlError):
    """The named engine is not running."""

    def __init__(self, engine: str) -> None:
        super().__init__(f"Engine {engine!r} is not running", 503)
        self.engine = engine


class CommandTimeout(ControlError):
    """The engine did not answer in time."""

    def __init__(self, engine: str, timeout: float) -> None:
        super().__init__("Operation timeout", 504)
        self.engine = engine
        self.timeout = timeout
