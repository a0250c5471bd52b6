"""The client against Binance's documented wire facts (docs/venues/binance-wire-facts.md): the documented
signature examples, the documented combined-stream serverShutdown frame, enum spellings and error answers."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from exchanges.binance import BinanceSim
from moonship_binance import constants as c
from moonship_binance.auth import encode, sign, ws_signature
from moonship_binance.parse import order_from_report, parse_order

from moonship_core import AuthenticationError, MarketStatus, NotSupported
from moonship_core.testing import until

from .conftest import fast, make_client, seed_book

pytestmark = pytest.mark.anyio

#: the example key pair of rest-api.md and web-socket-api.md, "SIGNED request example (HMAC)"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
#: the documents' non-ASCII symbol: the fullwidth digits one to six
WIDE = "\uff11\uff12\uff13\uff14\uff15\uff16"
DOC_REST = [
    ("side", "BUY"),
    ("type", "LIMIT"),
    ("timeInForce", "GTC"),
    ("quantity", "1"),
    ("price", "0.1"),
    ("recvWindow", "5000"),
    ("timestamp", "1499827319559"),
]


@pytest.mark.parametrize(
    ("symbol", "signature"),
    [
        ("LTCBTC", "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"),
        (WIDE, "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"),
    ],
)
def test_rest_signing_reproduces_binances_documented_examples(symbol: str, signature: str) -> None:
    """rest-api.md: the percent-encoded `k=v&...` payload (non-ASCII symbol percent-encoded first)."""
    assert sign(DOC_SECRET, encode([("symbol", symbol), *DOC_REST])) == signature


@pytest.mark.parametrize(
    ("params", "signature"),
    [
        (
            {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01000000", "price": "52000.00",
             "recvWindow": 100},
            "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24",
        ),
        (
            {"symbol": WIDE, "side": "BUY", "quantity": "1.00000000", "price": "0.10000000",
             "recvWindow": 5000},
            "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd",
        ),
    ],
)
def test_websocket_api_signing_reproduces_binances_documented_examples(
    params: dict[str, str | int], signature: str
) -> None:
    """web-socket-api.md: every param but `signature`, sorted by name, UTF-8, not percent-encoded."""
    full = {
        **params,
        "type": "LIMIT",
        "timeInForce": "GTC",
        "timestamp": 1645423376532,
        "apiKey": DOC_KEY,
        "signature": "------ FILL ME ------",
    }
    assert ws_signature(DOC_SECRET, full) == signature


async def test_the_documented_combined_server_shutdown_frame_reconnects_the_market_stream(
    sim: BinanceSim,
) -> None:
    """web-socket-streams.md "Server Shutdown": a combined stream wraps it as stream "!serverShutdown"."""
    client, events = make_client(fast(sim))
    await client.get_market_info()
    await client.connect()
    await until(lambda: events.status_now is MarketStatus.OPEN, what="book synced")
    frame = {"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1770123456789}}
    for conn in [conn for conn in sim.conns if conn.kind == "stream"]:
        conn.send(orjson.dumps(frame).decode())
    await until(lambda: sim.stream_connects == 2, what="a new market-stream connection")
    assert any("serverShutdown" in reason for _, reason in events.statuses)
    await until(lambda: events.status_now is MarketStatus.OPEN, what="book resynced")
    await client.close()


@pytest.mark.parametrize("transport", ["picows", "websockets"])
async def test_both_sockets_answer_the_servers_pings(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    """web-socket-streams.md / web-socket-api.md: the server pings every 20 s and drops a connection whose
    pong (a copy of the ping's payload) is not back within a minute; here scaled down to 0.2 s and 0.5 s."""
    monkeypatch.setenv("MOONSHIP_WS_TRANSPORT", transport)
    async with BinanceSim(ping_interval=0.2, ping_timeout=0.5) as sim:
        seed_book(sim)
        client, events = make_client(fast(sim, ping_interval=60.0))  # only the server's pings
        await client.get_market_info()
        await client.connect()
        await until(lambda: events.status_now is MarketStatus.OPEN and sim.api_connects == 1, what="open")
        await asyncio.sleep(2.0)
        assert (sim.stream_connects, sim.api_connects) == (1, 1)
        await client.close()


def test_expiry_and_reject_reason_none_is_no_reason() -> None:
    """enums.md "Expiry Reasons" and user-data-stream.md "Order Reject Reason" both list NONE."""
    body = {
        "symbol": "BTCUSDT", "orderId": 7, "clientOrderId": "a", "price": "1.00", "origQty": "1.0",
        "executedQty": "0", "status": "EXPIRED", "type": "LIMIT", "side": "BUY", "timeInForce": "IOC",
        "time": 1499827319559, "updateTime": 1499827319559, "expiryReason": "NONE",
    }
    assert parse_order(body).reason is None
    assert parse_order({**body, "expiryReason": "UNFILLED_IOC_QUANTITY_EXPIRED"}).reason == (
        "UNFILLED_IOC_QUANTITY_EXPIRED"
    )
    report = {
        "e": "executionReport", "s": "BTCUSDT", "c": "a", "S": "BUY", "o": "LIMIT", "f": "IOC", "q": "1.0",
        "p": "1.00", "C": "", "x": "EXPIRED", "X": "EXPIRED", "r": "NONE", "i": 7, "l": "0", "z": "0",
        "L": "0", "n": "0", "N": None, "T": 1499827319559, "t": -1, "m": False, "O": 1499827319559,
        "Z": "0", "Q": "0", "eR": "NONE",
    }
    assert order_from_report(report).reason is None
    assert order_from_report({**report, "r": "INSUFFICIENT_BALANCES"}).reason == "INSUFFICIENT_BALANCES"


def test_a_waf_403_is_not_an_authentication_error() -> None:
    """rest-api.md "HTTP Return Codes": 403 is a WAF block (a rate limit or a security rule), not the key."""
    error = c.ERRORS.error(403, None, "<html>403 Forbidden</html>")
    assert not isinstance(error, AuthenticationError)
    assert isinstance(c.ERRORS.error(401, -2015, "Invalid API-key, IP, or permissions for action."),
                      AuthenticationError)


@pytest.mark.parametrize(
    "message",
    [
        "Market orders are not supported for this symbol.",
        "Quote order qty market orders are not support for this symbol.",  # sic, errors.md
    ],
)
def test_order_types_a_symbol_lacks_are_not_supported(message: str) -> None:
    """errors.md, messages for -2010 NEW_ORDER_REJECTED."""
    assert isinstance(c.ERRORS.error(400, -2010, message), NotSupported)
