"""Wire facts where VALR's sources disagree or have two shapes: the client reads either form."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import websockets
from moonship_valr.parse import parse_balance
from moonship_valr.stream import MarketFeed

from moonship_core import Balance, MarketStatus
from moonship_core.testing import RecordingEvents

from .harness import D, local_signer, venue

pytestmark = pytest.mark.anyio


def _book(bid: str, ask: str, seq: int, *, lower: bool) -> dict[str, Any]:
    level = {"quantity": "1", "currencyPair": "BTCZAR", "orderCount": 1}
    names = (
        ("bids", "asks", "lastChange", "sequenceNumber")
        if lower
        else ("Bids", "Asks", "LastChange", "SequenceNumber")
    )
    return {
        names[0]: [level | {"side": "buy", "price": bid}],
        names[1]: [level | {"side": "sell", "price": ask}],
        names[2]: "2024-03-27T12:39:52.562Z",
        names[3]: seq,
    }


@pytest.mark.parametrize("lower", [False, True])
def test_aggregated_book_keys_in_pascal_or_lower_case(lower: bool) -> None:
    events = RecordingEvents("BTCZAR")
    feed = MarketFeed("BTCZAR", events, lambda: MarketStatus.OPEN)
    feed.on_book(_book("999", "1001", 5, lower=lower))
    feed.on_book(_book("998", "1001", 6, lower=lower))
    feed.on_book(_book("990", "1000", 4, lower=lower))  # older sequence: ignored
    assert (events.book.best_bid, events.book.best_ask, events.book.sequence) == (D(998), D(1001), 6)
    assert [status for status, _ in events.statuses] == [MarketStatus.OPEN]


async def test_signed_trade_socket_is_told_it_is_authenticated() -> None:
    async with venue() as (_sim, server):
        signer = local_signer()
        async with websockets.connect(
            server.ws_url + "/ws/trade", additional_headers=signer.headers("GET", "/ws/trade")
        ) as ws:
            assert orjson.loads(await ws.recv()) == {"type": "AUTHENTICATED"}


def test_balances_parse_rest_and_socket_currency_shapes() -> None:
    rest = {"currency": "BTC", "available": "1.5", "reserved": "0.5", "total": "2"}
    socket = rest | {"currency": {"shortName": "BTC", "longName": "Bitcoin", "decimalPlaces": 8}}
    assert parse_balance(rest) == parse_balance(socket) == Balance("BTC", D("1.5"), D("0.5"))
