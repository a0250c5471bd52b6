"""VALR's error answers onto the core taxonomy (constants.ERRORS through rest.error_for)."""

from __future__ import annotations

from typing import Any

import pytest
from moonship_valr.constants import StaleTimestamp
from moonship_valr.rest import error_for

from moonship_core import (
    AuthenticationError,
    DuplicateClientOrderId,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    PostOnlyRejected,
)


@pytest.mark.parametrize(
    ("status", "body", "error", "rule"),
    [
        (
            400,
            {"code": -11502, "message": "Duplicate customer order id's are not allowed"},
            DuplicateClientOrderId,
            None,
        ),
        (400, {"code": "-11502", "message": "?"}, DuplicateClientOrderId, None),  # a code sent as a string
        (400, {"code": -1, "message": "Invalid Order. "}, OrderNotFound, None),
        (400, {"message": "Could not find the order to cancel"}, OrderNotFound, None),
        (404, None, OrderNotFound, None),
        (400, {"code": -6, "message": "Insufficient Balance"}, InsufficientFunds, None),
        (
            201,
            {"orderId": "x", "code": -19, "message": "postOnly order would have matched"},
            PostOnlyRejected,
            None,
        ),
        (400, {"code": -12007, "message": "Minimum order size not met"}, InvalidOrder, "min_quantity"),
        (
            400,
            {"code": -12007, "message": "Minimum order value (quote) not met"},
            InvalidOrder,
            "min_notional",
        ),
        (400, {"code": -113, "message": "Invalid JSON payload"}, InvalidOrder, None),
        (401, {"code": -11254, "message": "Request has expired"}, StaleTimestamp, None),
        (401, {"code": -11, "message": "Invalid API key"}, AuthenticationError, None),
        (403, None, AuthenticationError, None),
        (409, {"message": "something else"}, ExchangeError, None),
    ],
)
def test_errors_map_onto_the_taxonomy(
    status: int, body: Any, error: type[ExchangeError], rule: str | None
) -> None:
    mapped = error_for(status, body, text="")
    assert type(mapped) is error, mapped
    if rule is not None:
        assert isinstance(mapped, InvalidOrder) and mapped.rule == rule
