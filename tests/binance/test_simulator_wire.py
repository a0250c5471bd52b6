"""The simulator against Binance's documentation, on the raw wire (httpx and websockets, never the client):
the documented signed requests, serverShutdown frames, parameter-dependent weights, /sapi limits per
endpoint, -1003 wording and expiry reasons (docs/venues/binance-wire-facts.md)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from exchanges.binance import KEY, SECRET, BinanceSim, SymbolSpec
from exchanges.binance.engine import now_ms
from exchanges.binance.server import ws_payload
from websockets.asyncio.client import connect

from moonship_core.testing import until

from .conftest import seed_book

pytestmark = pytest.mark.anyio
D = Decimal

#: the example key pair of rest-api.md and web-socket-api.md, "SIGNED request example (HMAC)"
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_TIMESTAMP = 1499827319559
#: the documents' non-ASCII symbol: the fullwidth digits one to six
WIDE = "\uff11\uff12\uff13\uff14\uff15\uff16"


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim() as running:
        seed_book(running)
        yield running


def signed(secret: str, params: list[tuple[str, str]]) -> str:
    """A signed query string as rest-api.md builds one (written from the docs, not the client's auth)."""
    query = urlencode([*params, ("timestamp", str(now_ms()))])
    return f"{query}&signature={hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()}"


def away_from_minute_end() -> None:
    """The simulator's windows reset on the minute: keep a test's requests inside one minute."""
    while time.monotonic() % 60 > 55:
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("symbol", "payload", "signature"),
    [
        (
            "LTCBTC",
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
            "&timestamp=1499827319559",
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71",
        ),
        (
            WIDE,
            "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT"
            "&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559",
            "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3",
        ),
    ],
)
async def test_the_documented_signed_requests_are_accepted(symbol: str, payload: str, signature: str) -> None:
    """rest-api.md "SIGNED Endpoint Examples for POST /api/v3/order": the curl requests, verbatim."""
    async with BinanceSim(symbols=(SymbolSpec(symbol, "LTC", "BTC", min_notional=D("0.01")),)) as sim:
        sim.exchange.add_account(DOC_KEY, DOC_SECRET, {"BTC": "10"})
        sim.exchange.clock_offset_ms = DOC_TIMESTAMP - now_ms() + 100  # the example's moment
        async with httpx.AsyncClient(base_url=sim.rest_url, headers={"X-MBX-APIKEY": DOC_KEY}) as http:
            for sent in (signature, signature.upper()):  # an HMAC signature is not case-sensitive
                answer = await http.post(f"/api/v3/order?{payload}&signature={sent}")
                assert answer.status_code == 200, answer.text
                assert answer.json()["status"] == "NEW" and answer.json()["origQty"] == "1.00000000"
            forged = await http.post(f"/api/v3/order?{payload}&signature={'0' * 64}")
            assert (forged.status_code, forged.json()["code"]) == (400, -1022)


@pytest.mark.parametrize(
    ("params", "documented", "signature"),
    [
        (
            {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01000000", "price": "52000.00",
             "recvWindow": 100},
            f"apiKey={DOC_KEY}&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT"
            "&timeInForce=GTC&timestamp=1645423376532&type=LIMIT",
            "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24",
        ),
        (
            {"symbol": WIDE, "side": "BUY", "quantity": "1.00000000", "price": "0.10000000",
             "recvWindow": 5000},
            f"apiKey={DOC_KEY}&price=0.10000000&quantity=1.00000000&recvWindow=5000&side=BUY&symbol={WIDE}"
            "&timeInForce=GTC&timestamp=1645423376532&type=LIMIT",
            "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd",
        ),
    ],
)
def test_the_websocket_api_payload_is_the_documented_one(
    params: dict[str, Any], documented: str, signature: str
) -> None:
    """web-socket-api.md "SIGNED request example (HMAC)": sorted params, UTF-8, not percent-encoded."""
    full = {**params, "type": "LIMIT", "timeInForce": "GTC", "timestamp": 1645423376532, "apiKey": DOC_KEY,
            "signature": "------ FILL ME ------"}
    assert ws_payload(full) == documented
    assert hmac.new(DOC_SECRET.encode(), documented.encode(), hashlib.sha256).hexdigest() == signature


async def test_server_shutdown_frames_as_documented(sim: BinanceSim) -> None:
    """web-socket-streams.md and web-socket-api.md "Server Shutdown": raw, combined and WebSocket API."""
    async with (
        connect(f"{sim.ws_url}/ws/btcusdt@trade") as raw,
        connect(f"{sim.ws_url}/stream?streams=btcusdt@trade") as combined,
        connect(sim.ws_api_url) as api,
    ):
        await until(lambda: sim.stream_connects == 2 and sim.api_connects == 1, what="three connections")
        sim.server_shutdown()
        frames = [orjson.loads(await ws.recv()) for ws in (raw, combined, api)]
    assert frames[0]["e"] == "serverShutdown" and isinstance(frames[0]["E"], int)
    assert frames[1] == {"stream": "!serverShutdown", "data": frames[0]}
    assert frames[2] == {"event": frames[0]}


async def test_request_weights_that_depend_on_the_parameters(sim: BinanceSim) -> None:
    """rest-api.md: myTrades weighs 20, 5 with orderId; openOrders 6 for a symbol, 80 without."""
    away_from_minute_end()
    async with httpx.AsyncClient(base_url=sim.rest_url, headers={"X-MBX-APIKEY": KEY}) as http:

        async def weight(path: str, params: list[tuple[str, str]]) -> int:
            before = sim.weight.used
            answer = await http.get(f"{path}?{signed(SECRET, params)}")
            assert answer.status_code == 200, answer.text
            assert int(answer.headers["X-MBX-USED-WEIGHT-1M"]) == sim.weight.used
            return sim.weight.used - before

        assert await weight("/api/v3/myTrades", [("symbol", "BTCUSDT")]) == 20
        assert await weight("/api/v3/myTrades", [("symbol", "BTCUSDT"), ("orderId", "1")]) == 5
        assert await weight("/api/v3/openOrders", [("symbol", "BTCUSDT")]) == 6
        assert await weight("/api/v3/openOrders", []) == 80


async def test_sapi_ip_limits_are_per_endpoint_and_never_ban() -> None:
    """Binance's /sapi limits: each IP-limited endpoint has its own 12,000 per minute; always 429."""
    async with BinanceSim(sapi_ip_limit=15) as sim:
        away_from_minute_end()
        async with httpx.AsyncClient(base_url=sim.rest_url, headers={"X-MBX-APIKEY": KEY}) as http:
            open_orders = "/sapi/v1/margin/openOrders"
            first = await http.get(f"{open_orders}?{signed(SECRET, [('symbol', 'BTCUSDT')])}")
            other = await http.get(f"/sapi/v1/margin/account?{signed(SECRET, [])}")
            assert (first.status_code, other.status_code) == (200, 200), other.text
            assert other.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "10"
            again = await http.get(f"{open_orders}?{signed(SECRET, [('symbol', 'BTCUSDT')])}")
            assert again.status_code == 429 and again.json()["code"] == -1003
            assert "Retry-After" in again.headers
            assert again.json()["msg"].startswith("Too much request weight used; current limit is 15")
            for _ in range(3):  # ignoring the Retry-After on /sapi is not escalated to a ban
                ignored = await http.get(f"{open_orders}?{signed(SECRET, [('symbol', 'BTCUSDT')])}")
                assert ignored.status_code == 429
        assert sim.sapi_used("GET /sapi/v1/margin/openOrders") == 10
        assert sim.sapi_used("GET /sapi/v1/margin/account") == 10


async def test_api_weight_limit_answers_with_the_documented_message_and_bans_who_does_not_back_off() -> None:
    """errors.md -1003: "Too much request weight used; current limit is %s request weight per %s.";
    rest-api.md "IP Limits": failing to back off after 429s gets a 418 ban (a request in flight does not)."""
    async with BinanceSim(weight_limit=1) as sim:
        away_from_minute_end()
        async with httpx.AsyncClient(base_url=sim.rest_url) as http:
            assert (await http.get("/api/v3/time")).status_code == 200
            refused = await http.get("/api/v3/time")
            assert refused.status_code == 429 and refused.headers["Retry-After"]
            assert refused.json()["msg"].startswith(
                "Too much request weight used; current limit is 1 request weight per 1 MINUTE."
            )
            in_flight = await http.get("/api/v3/time")  # sent before its sender read the 429
            assert in_flight.status_code == 429 and in_flight.json()["code"] == -1003
            await asyncio.sleep(0.6)
            banned = await http.get("/api/v3/time")  # the Retry-After was ignored: "failing to back off"
            assert banned.status_code == 418
            assert banned.json()["msg"].startswith("Way too much request weight used; IP banned until ")


@pytest.mark.parametrize(
    ("tif", "quantity", "price", "reason"),
    [
        ("IOC", "2", "30001", "UNFILLED_IOC_QUANTITY_EXPIRED"),  # fills 1 of 2, the rest expires
        ("FOK", "3", "30002", "UNFILLED_FOK_ORDER_EXPIRED"),  # only 2 available: nothing fills
    ],
)
async def test_expiry_reasons_as_documented(
    sim: BinanceSim, tif: str, quantity: str, price: str, reason: str
) -> None:
    """enums.md "Expiry Reasons" and user-data-stream.md "Order Expiry Reason"."""
    params = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", tif),
              ("quantity", quantity), ("price", price)]
    async with httpx.AsyncClient(base_url=sim.rest_url, headers={"X-MBX-APIKEY": KEY}) as http:
        answer = await http.post("/api/v3/order", content=signed(SECRET, params),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    body = answer.json()
    assert (body["status"], body["expiryReason"]) == ("EXPIRED", reason), body
