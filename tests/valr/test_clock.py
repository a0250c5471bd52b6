"""VALR's clock: `/v1/public/time` (epochTime in seconds, ISO `time` in ms), the timestamp check on signed
requests and socket upgrades, and a client that syncs to a server clock an hour ahead or behind."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import moonship_valr.plugin
import orjson
import pytest
import websockets
from exchanges.valr import Participants
from moonship_valr.auth import Signer
from moonship_valr.client import ValrSession
from moonship_valr.constants import StaleTimestamp
from moonship_valr.parse import server_time_ms
from moonship_valr.rest import error_for
from moonship_valr.stream import Socket, Timing
from websockets.exceptions import InvalidStatus

from moonship_core import (
    ExchangeError,
    MarketStatus,
    OrderRequest,
    OrderStatus,
    Side,
    SimClock,
    StrategyMarket,
)
from moonship_core.testing import LocalPlugin, ScriptedAlgo, build_engine, started, until

from .harness import API_KEY, OWNER, SECRET, D, client_of, local_signer, make_market, settings_for, venue

pytestmark = pytest.mark.anyio

HOUR_MS = 3_600_000
EXPIRED = {"code": -11254, "message": "Request has expired"}
#: VALR's documented example answer of GET /v1/public/time
DOC_TIME = {"epochTime": 1555228618, "time": "2019-04-14T07:56:58.372Z"}


# ---------------------------------------------------------------------- parsing the answer
@pytest.mark.parametrize(
    ("answer", "expected_ms"),
    [
        (DOC_TIME, 1555228618372),  # the ISO field is the precise one
        ({"epochTime": 1555228618}, 1555228618000),  # seconds, as documented
        ({"epochTime": 1555228618372}, 1555228618372),  # milliseconds (the other reading)
        ({"epochTime": "1555228618"}, 1555228618000),  # a number sent as a string
        ({"epochTime": 1555228618, "time": "not a time"}, 1555228618000),  # unparseable time: epochTime
        ({"epochTime": 1555228618, "time": ""}, 1555228618000),
        ({"epochTime": 1555228618372, "time": None}, 1555228618372),
        ({"epochTime": 99_999_999_999}, 99_999_999_999_000),  # 11 digits: still seconds
        ({"epochTime": 100_000_000_000}, 100_000_000_000),  # 12 digits: milliseconds
        ({"time": "2019-04-14T07:56:58.372+00:00"}, 1555228618372),
        ({"time": "2019-04-14T07:56:58.372"}, 1555228618372),  # no zone: UTC
        ({"time": "2019-04-14T09:56:58.372+02:00"}, 1555228618372),
        ({"time": "2019-04-14T07:56:58Z"}, 1555228618000),
    ],
)
def test_server_time_from_either_reading_of_epoch_time_and_the_iso_field(
    answer: dict[str, Any], expected_ms: int
) -> None:
    assert server_time_ms(answer) == expected_ms


def test_iso_time_wins_over_a_disagreeing_epoch_time() -> None:
    # epochTime read as ms would be 1970; the ISO field gives the real moment
    assert server_time_ms(DOC_TIME) == server_time_ms({"time": DOC_TIME["time"]})
    assert abs(server_time_ms(DOC_TIME) - server_time_ms({"epochTime": DOC_TIME["epochTime"]})) < 1000


@pytest.mark.parametrize("answer", [{}, {"epochTime": "soon"}, None, ["x"]])
def test_unusable_time_answers_raise(answer: Any) -> None:
    with pytest.raises(ExchangeError):
        server_time_ms(answer)


def test_expired_code_is_a_stale_timestamp_whatever_the_wording() -> None:
    assert isinstance(error_for(401, EXPIRED), StaleTimestamp)
    assert isinstance(error_for(401, {"code": "-11254", "message": "?"}), StaleTimestamp)
    assert isinstance(error_for(401, {"message": "Request timestamp expired"}), StaleTimestamp)
    assert not isinstance(error_for(401, {"code": -11, "message": "Invalid API key"}), StaleTimestamp)


#: VALR's documented signing samples: (server time ms, verb, path, body, X-VALR-SIGNATURE)
DOC_SAMPLES = [
    (
        1558014486185,
        "GET",
        "/v1/account/balances",
        b"",
        "9d52c181ed69460b49307b7891f04658e938b21181173844b5018b2fe783a6d4"
        "c62b8e67a03de4d099e7437ebfabe12c56233b73c6a0cc0f7ae87e05f6289928",
    ),
    (
        1558017528946,
        "POST",
        "/v1/orders/market",
        b'{"customerOrderId":"ORDER-000001","pair":"BTCUSDC","side":"BUY","quoteAmount":"80000"}',
        "09f536e3dfdad58443f16010a97a0a21ad27486b7b8d6d4103170d885410ed77"
        "f037f1fa628474190d4f5c08ca12c1acc850901f1c2e75c6d906ec3b32b008d0",
    ),
]


@pytest.mark.parametrize(("server_ms", "verb", "path", "body", "signature"), DOC_SAMPLES)
def test_documented_samples_are_signed_with_the_synced_clock(
    server_ms: int, verb: str, path: str, body: bytes, signature: str
) -> None:
    """VALR's documented sample requests, signed by a process whose clock is an hour behind VALR's."""
    local = SimClock(datetime.fromtimestamp((server_ms - HOUR_MS) / 1000, UTC))
    signer = local_signer(
        HOUR_MS, secret="4961b74efac86b25cce8fbe4c9811c4c7a787b7a5996660afcc2e287ad864363", clock=local
    )
    headers = signer.headers(verb, path, body)
    assert headers["X-VALR-TIMESTAMP"] == str(server_ms)
    assert headers["X-VALR-SIGNATURE"] == signature


# ---------------------------------------------------------------------- the simulator's clock
@pytest.mark.parametrize("skew_ms", [0, HOUR_MS, -HOUR_MS])
async def test_simulator_time_is_documented_shape_and_follows_its_skew(skew_ms: int) -> None:
    async with venue() as (sim, server):
        sim.clock_skew_ms = skew_ms
        async with httpx.AsyncClient(base_url=server.rest_url) as http:
            before = time.time()
            data = (await http.get("/v1/public/time")).json()
            after = time.time()
        assert set(data) == {"epochTime", "time"}
        assert isinstance(data["epochTime"], int) and len(str(data["epochTime"])) == 10  # seconds
        stamp = data["time"]
        assert isinstance(stamp, str) and stamp.endswith("Z") and len(stamp.split(".")[1]) == 4  # ms + Z
        iso_s = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        assert int(iso_s) == data["epochTime"]
        assert before + skew_ms / 1000 - 1 <= iso_s <= after + skew_ms / 1000 + 1


async def test_simulator_refuses_timestamps_outside_the_window_on_rest_and_sockets() -> None:
    async with venue() as (sim, server):
        sim.clock_skew_ms = HOUR_MS
        signer = local_signer()  # unsynced: an hour behind the server
        async with httpx.AsyncClient(base_url=server.rest_url) as http:
            path = "/v1/account/balances"
            refused = await http.get(path, headers=signer.headers("GET", path))
            assert refused.status_code == 401 and refused.json() == EXPIRED
            seconds = str(int(time.time()) + HOUR_MS // 1000)  # the right moment, in the wrong unit
            headers = signer.headers("GET", path) | {"X-VALR-TIMESTAMP": seconds}
            assert (await http.get(path, headers=headers)).status_code == 401
            signer.server_time.offset_ms = HOUR_MS
            assert (await http.get(path, headers=signer.headers("GET", path))).status_code == 200
            signer.server_time.offset_ms = HOUR_MS - 59_000  # inside the 60 s window
            assert (await http.get(path, headers=signer.headers("GET", path))).status_code == 200
            signer.server_time.offset_ms = HOUR_MS + 61_000
            assert (await http.get(path, headers=signer.headers("GET", path))).status_code == 401
        signer.server_time.offset_ms = 0
        for kind in ("account", "trade"):
            with pytest.raises(InvalidStatus) as refusal:
                async with websockets.connect(
                    f"{server.ws_url}/ws/{kind}", additional_headers=signer.headers("GET", f"/ws/{kind}")
                ):
                    pass
            assert refusal.value.response.status_code == 401
            assert orjson.loads(refusal.value.response.body) == EXPIRED
        signer.server_time.offset_ms = HOUR_MS
        async with websockets.connect(
            server.ws_url + "/ws/account", additional_headers=signer.headers("GET", "/ws/account")
        ) as ws:
            assert orjson.loads(await ws.recv()) == {"type": "AUTHENTICATED"}


# ---------------------------------------------------------------------- the client against a skewed server
@pytest.mark.parametrize("skew_ms", [HOUR_MS, -HOUR_MS])
async def test_client_syncs_to_a_skewed_server_then_signs_rest_and_the_account_socket(skew_ms: int) -> None:
    async with venue() as (sim, server):
        sim.clock_skew_ms = skew_ms
        Participants(sim.exchange, "BTCZAR", mid=D(1_000_000)).seed_book(3)
        market, _ = make_market(server)
        await market.open()
        try:
            client = client_of(market)
            server_time = client.session.server_time
            assert server_time.synced_at is not None and abs(server_time.offset_ms - skew_ms) < 1000
            await until(lambda: market.status is MarketStatus.OPEN, what="market open")
            await until(lambda: sim.connections["account"] == 1, what="account socket")
            assert sim.refused == 0  # no upgrade was refused: both were signed with the server's time
            assert (await client.get_balances())["BTC"].free == D(10)
            ack = await market.place_order(
                OrderRequest.limit(Side.BUY, D("0.01"), D(999_000), post_only=True), owner=OWNER
            )
            assert sim.exchange.orders[ack.id].account is sim.account(API_KEY)
            # the account socket (signed with the synced clock) reports the reservation
            await until(lambda: market.balances["ZAR"].locked == D(9990), what="account socket update")
            done = await market.cancel_order(ack)
            assert done.status is OrderStatus.CANCELLED
        finally:
            await market.close()


async def test_server_clock_jump_is_followed_on_rest_and_on_socket_reconnects() -> None:
    async with venue() as (sim, server):
        Participants(sim.exchange, "BTCZAR", mid=D(1_000_000)).seed_book(3)
        market, _rec = make_market(server)
        await market.open()
        try:
            client = client_of(market)
            await until(lambda: sim.connections["account"] == 1, what="account socket")
            assert client.session.server_time.synced_at is not None
            assert abs(client.session.server_time.offset_ms) < 1000
            sim.clock_skew_ms = -HOUR_MS  # the server's clock jumps back an hour
            await sim.drop_connections()  # refusals (REST or upgrade, whichever comes first) resync the clock
            await until(lambda: sim.connections["account"] == 2, what="account socket back")
            await until(lambda: sim.connections["trade"] == 2, what="trade socket back")
            await until(lambda: market.status is MarketStatus.OPEN, what="market open again")
            assert abs(client.session.server_time.offset_ms + HOUR_MS) < 1000
            sim.clock_skew_ms = HOUR_MS  # and forward: a refused REST call resyncs and is retried
            assert (await client.get_balances())["ZAR"].free == D(1_000_000)
            assert abs(client.session.server_time.offset_ms - HOUR_MS) < 1000
            assert client.rest.signer is not None
            assert client.rest.signer.server_time is client.session.server_time
        finally:
            await market.close()


@pytest.mark.parametrize("path", ["/ws/account", "/ws/trade"])
async def test_socket_refused_for_its_timestamp_resyncs_the_clock(path: str) -> None:
    async with venue() as (sim, server):
        sim.clock_skew_ms = -HOUR_MS
        hub = ValrSession(settings_for(server), logging.getLogger("test.valr"))
        rest = hub.rest(Signer(API_KEY, SECRET, hub.server_time))  # never synced: an hour ahead of the server
        timing = Timing(reconnect_max_delay=0.2)
        socket = Socket(server.ws_url, path, rest.signer, timing, hub.logger, hub.resync_time)
        socket.start()
        try:
            kind = path.rsplit("/", 1)[1]
            await until(lambda: sim.connections[kind] == 1, what="socket admitted")
            assert sim.refused == 1  # the first upgrade: 401 expired, then the clock was resynced
            assert hub.server_time.synced_at is not None and abs(hub.server_time.offset_ms + HOUR_MS) < 1000
            assert sim.requests == [("GET", "/v1/public/time")]
        finally:
            await socket.stop()
            await hub.aclose()


# ---------------------------------------------------------------------- a strategy in an engine
class BidOnce(ScriptedAlgo):
    """Bids post-only below the best ask once the market is open."""

    def opening(self, market: StrategyMarket) -> list[OrderRequest]:
        ask = market.book.best_ask
        return [] if ask is None else [OrderRequest.limit(Side.BUY, D("0.01"), ask - 1_000, post_only=True)]


@pytest.mark.parametrize("skew_ms", [HOUR_MS, -HOUR_MS])
async def test_strategy_places_an_order_on_a_skewed_valr(skew_ms: int) -> None:
    async with venue() as (sim, server):
        sim.clock_skew_ms = skew_ms
        Participants(sim.exchange, "BTCZAR", mid=D(1_000_000)).seed_book(5)
        config = {
            "valr": {
                "api_key": API_KEY,
                "api_secret": SECRET,
                "rest_url": server.rest_url,
                "ws_url": server.ws_url,
            },
            "markets": {"btc": {"client": "valr", "symbol": "BTCZAR"}},
            "strategies": {"s": {"algo": "bid_once_clock", "auto_start": True, "markets": ["btc"]}},
        }
        engine = build_engine(config, moonship_valr.plugin, LocalPlugin({"bid_once_clock": BidOnce}))
        try:
            (algo,) = await started(engine, "s")
            await until(lambda: algo.placed, what="placed")
            order = sim.exchange.orders[algo.placed[0].id]
            assert order.account is sim.account(API_KEY) and order.is_open
            assert algo.placed[0].price == D(999_001)
            assert sim.refused == 0
        finally:
            await engine.stop()
