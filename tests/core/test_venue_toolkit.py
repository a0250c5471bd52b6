"""The venue toolkit on real sockets: SilenceWatch, RateLimits (tables, Retry-After, 418 bans), ServerClock,
ErrorTable, Features, VenueSession (ReconnectingWebSocket over both transports: test_venue_websocket.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import ClassVar

import httpx
import pytest
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from moonship_core import (
    AuthenticationError,
    Ban,
    ClientContext,
    DuplicateClientOrderId,
    ErrorRule,
    ErrorTable,
    ExchangeError,
    Features,
    InvalidOrder,
    MarketConfig,
    NotSupported,
    OrderRequest,
    OrderStatus,
    OrderType,
    Pool,
    PostOnlyRejected,
    RateLimited,
    RateLimits,
    RateTable,
    ServerClock,
    Sessions,
    Side,
    SilenceWatch,
    TimeInForce,
    VenueSession,
    VenueSettings,
    parse_retry_after,
)
from moonship_core.testing import ScriptedClient, websocket_server
from moonship_core.trading.market import Market

D = Decimal
def test_silence_watch_fires_once_and_rearms_on_touch() -> None:
    async def main() -> None:
        fired: list[float] = []
        watch = SilenceWatch(0.1, fired.append)
        watch.arm()
        await asyncio.sleep(0.35)
        assert len(fired) == 1
        watch.touch()
        await asyncio.sleep(0.05)
        watch.touch()  # data flowing: no report
        await asyncio.sleep(0.05)
        assert len(fired) == 1
        await asyncio.sleep(0.15)
        assert len(fired) == 2
        watch.disarm()
        await asyncio.sleep(0.2)
        assert len(fired) == 2

    asyncio.run(main())


# ---------------------------------------------------------------------- rate limits
TABLE = RateTable(
    pools=[
        Pool("weight", 10, 1.0, header="x-used-weight"),
        Pool("orders", 2, 1.0, per_account=True),
    ],
    endpoints={"GET /depth": {"weight": 5}, "POST /order": {"weight": 1, "orders": 1}},
    default={"weight": 1},
)


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 2.5 ", now) == 2.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:59:00 GMT", now) == 0.0  # already past
    assert parse_retry_after("soon", now, default=3.0) == 3.0
    assert parse_retry_after(None, now) == 1.0


def test_http_date_retry_after_from_a_real_server_pauses_the_session() -> None:
    async def handler(ws: ServerConnection) -> None:
        await asyncio.sleep(0)

    def answer(conn: ServerConnection, request: Request) -> Response:
        when = datetime.now(UTC) + timedelta(seconds=2)
        headers = Headers({"Retry-After": format_datetime(when, usegmt=True)})
        return Response(429, "Too Many Requests", headers)

    async def main() -> None:
        async with websocket_server(handler, process_request=answer) as url:
            http_url = url.replace("ws://", "http://")
            async with httpx.AsyncClient() as http:
                response = await http.get(http_url)
        assert response.status_code == 429
        seconds = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        assert 0.5 <= seconds <= 2.0  # the HTTP-date has whole seconds
        limits = RateLimits(TABLE)
        limits.refused(429, seconds)
        assert limits.wait_time("GET /depth") == pytest.approx(seconds, abs=0.05)

    asyncio.run(main())


def test_weights_by_table_per_pool_and_per_account() -> None:
    async def main() -> None:
        waits: list[tuple[str, float]] = []
        limits = RateLimits(TABLE, on_wait=lambda e, s: waits.append((e, s)))
        await limits.acquire("GET /depth")
        await limits.acquire("POST /order", account="a")
        await limits.acquire("POST /order", account="a")
        assert limits.wait_time("POST /order", account="b") == 0  # b's order count is its own
        assert limits.wait_time("POST /order", account="a") > 0.8  # a spent 2 orders this second
        assert limits.wait_time("GET /time") == 0  # weight 7 of 10 spent
        limits.observe({"x-used-weight": "10"})  # the venue counts more than we did
        assert limits.wait_time("GET /time") > 0.8
        started = time.monotonic()
        await limits.acquire("POST /order", account="b")
        assert time.monotonic() - started > 0.8
        assert waits and waits[0][0] == "POST /order"

    asyncio.run(main())


def test_a_wait_longer_than_max_wait_raises_rate_limited_at_once() -> None:
    async def main() -> None:
        limits = RateLimits(TABLE, max_wait=0.5)
        limits.refused(429, 5.0)
        started = time.monotonic()
        with pytest.raises(RateLimited) as caught:
            await limits.acquire("GET /depth")
        assert time.monotonic() - started < 0.1
        assert caught.value.retry_after is not None and 4.9 < caught.value.retry_after <= 5.0

    asyncio.run(main())


def test_a_418_ban_holds_every_session_of_the_venue_and_a_429_only_its_own() -> None:
    async def main() -> None:
        ban = Ban()
        spot, margin = RateLimits(TABLE, ban=ban), RateLimits(TABLE, ban=ban)
        spot.refused(429, 0.3)
        assert margin.wait_time("GET /depth") == 0
        margin.refused(418, 0.4)
        assert spot.wait_time("GET /depth") > 0.35
        started = time.monotonic()
        await spot.acquire("GET /depth")
        assert time.monotonic() - started >= 0.38
        assert RateLimits(TABLE).wait_time("GET /depth") == 0  # another engine's venue is not banned

    asyncio.run(main())


# ---------------------------------------------------------------------- server clock
def test_server_clock_offset_from_the_round_trip_midpoint_and_resync() -> None:
    async def main() -> None:
        fetches = 0

        async def fetch_ms() -> int:
            nonlocal fetches
            fetches += 1
            await asyncio.sleep(0.05)
            served = int(time.time() * 1000) + 5000  # the venue is 5 s ahead, answers mid-flight
            await asyncio.sleep(0.05)
            return served

        clock = ServerClock(fetch_ms, max_age=60)
        await asyncio.gather(clock.ensure(), clock.ensure(), clock.ensure())
        assert fetches == 1  # concurrent callers share one fetch
        assert abs(clock.offset_ms - 5000) <= 15
        assert clock.rtt_ms >= 95
        assert abs(clock.now_ms() - (int(time.time() * 1000) + 5000)) <= 20
        await clock.ensure()
        assert fetches == 1
        clock.invalidate()  # the venue rejected a timestamp
        await clock.ensure()
        assert fetches == 2

    asyncio.run(main())


# ---------------------------------------------------------------------- errors
def test_error_table_maps_status_code_and_message_onto_the_taxonomy() -> None:
    table = ErrorTable(
        "Venue",
        [
            ErrorRule(PostOnlyRejected, code=-2010, message="would immediately match"),
            ErrorRule(DuplicateClientOrderId, code=-2010, message="duplicate order"),
            ErrorRule(InvalidOrder, code=-1013, rule=lambda m: m.split(": ")[-1].lower()),
            ErrorRule(NotSupported, code=-1116, rule="order_type"),
            ErrorRule(AuthenticationError, status=401),
            ErrorRule(AuthenticationError, code=(-2014, -2015)),
        ],
    )
    assert isinstance(table.error(400, -2010, "Order would immediately match and take."), PostOnlyRejected)
    dup = table.error(400, -2010, "Duplicate order sent.")
    assert type(dup) is DuplicateClientOrderId and dup.code == -2010
    bad = table.error(400, -1013, "Filter failure: LOT_SIZE")
    assert isinstance(bad, InvalidOrder) and bad.rule == "lot_size"
    unsupported = table.error(400, -1116, "Invalid orderType.")
    assert isinstance(unsupported, NotSupported) and unsupported.feature == "order_type"
    assert isinstance(table.error(401, None, "no key"), AuthenticationError)
    assert isinstance(table.error(400, -2015, "Invalid API-key"), AuthenticationError)
    other = table.error(400, -9999, "something")
    assert type(other) is ExchangeError and str(other) == "Venue -9999: something"


# ---------------------------------------------------------------------- features
class SpotOnly(ScriptedClient):
    features = Features(
        time_in_force=frozenset({TimeInForce.GTC, TimeInForce.IOC}),
        post_only=False,
        quote_quantity_market=False,
        margin=False,
    )


def test_features_refuse_what_the_venue_cannot_do() -> None:
    features = SpotOnly.features
    with pytest.raises(NotSupported) as caught:
        features.check(OrderRequest.limit(Side.BUY, D(1), D(100), time_in_force=TimeInForce.FOK), "v")
    assert caught.value.feature == "time_in_force:FOK"
    for request, feature in [
        (OrderRequest.limit(Side.BUY, D(1), D(100), post_only=True), "post_only"),
        (OrderRequest.market(Side.BUY, quote_quantity=D(10)), "quote_quantity_market"),
        (OrderRequest.limit(Side.BUY, D(1), D(100), margin=True), "margin"),
    ]:
        with pytest.raises(NotSupported, match=feature):
            features.check(request)
    features.check(OrderRequest.market(Side.BUY, quantity=D(1)))
    spend_to_buy = Features(base_quantity_market_buy=False, quote_quantity_market_sell=False)  # e.g. Luno
    for request, feature in [
        (OrderRequest.market(Side.BUY, quantity=D(1)), "base_quantity_market_buy"),
        (OrderRequest.market(Side.SELL, quote_quantity=D(10)), "quote_quantity_market_sell"),
    ]:
        with pytest.raises(NotSupported, match=feature):
            spend_to_buy.check(request)
    spend_to_buy.check(OrderRequest.market(Side.BUY, quote_quantity=D(10)))
    spend_to_buy.check(OrderRequest.market(Side.SELL, quantity=D(1)))
    limit_only = Features(order_types=frozenset({OrderType.LIMIT}))
    with pytest.raises(NotSupported, match="order_type:MARKET"):
        limit_only.check(OrderRequest.market(Side.BUY, quantity=D(1)))


def test_the_market_rejects_an_unsupported_order_before_it_reaches_the_client() -> None:
    async def main() -> None:
        cfg = MarketConfig.model_validate({"client": "scripted", "symbol": "BTCUSDT"})
        market = Market("btc", cfg, SpotOnly, ClientContext("btc", cfg, {}, lambda name: SpotOnly))
        await market.open()
        refused = await market.place_order(OrderRequest.limit(Side.BUY, D(1), D(100), post_only=True))
        assert (refused.status, refused.error) == (OrderStatus.REJECTED, "NotSupported")
        assert refused.reason is not None and "post_only" in refused.reason
        accepted = await market.place_order(OrderRequest.limit(Side.BUY, D(1), D(100)))
        assert accepted.status is OrderStatus.PENDING
        client = market.client
        assert isinstance(client, SpotOnly) and len(client.placed) == 1

    asyncio.run(main())


# ---------------------------------------------------------------------- sessions
def test_sessions_are_shared_by_key_and_closed_with_their_parts() -> None:
    async def main() -> None:
        stopped: list[str] = []

        class Part:
            def __init__(self, name: str) -> None:
                self.name = name

            async def stop(self) -> None:
                stopped.append(self.name)

        sessions = Sessions()
        cfg = MarketConfig.model_validate({"client": "scripted", "symbol": "BTCUSDT"})
        one = ClientContext("a", cfg, {}, lambda name: SpotOnly, sessions=sessions)
        two = ClientContext("b", cfg, {}, lambda name: SpotOnly, sessions=sessions)
        session = one.session("venue http://x", lambda: VenueSession("venue", "http://x"))
        assert two.session("venue http://x", lambda: VenueSession("venue", "http://y")) is session
        assert session.part("stream", lambda: Part("stream")) is session.part("stream", lambda: Part("other"))
        session.part("user", lambda: Part("user"))
        http = session.http
        await sessions.aclose()
        assert stopped == ["user", "stream"] and http.is_closed and session.closed

    asyncio.run(main())


# ---------------------------------------------------------------------- settings
class OldNames(VenueSettings):
    renamed: ClassVar[dict[str, str]] = {
        "stale_after": "silence_timeout",
        "max_reconnect_delay": "reconnect_max_delay",
    }


def test_venue_settings_read_old_key_names_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    settings = OldNames.model_validate({"stale_after": 4, "max_reconnect_delay": 7, "pong_timeout": 3})
    assert (settings.silence_timeout, settings.reconnect_max_delay, settings.pong_timeout) == (4, 7, 3)
    assert "'stale_after' is deprecated: use 'silence_timeout'" in caplog.text
    assert OldNames().silence_timeout == 10.0
    with pytest.raises(ValidationError):
        OldNames.model_validate({"stale_timeout": 4})  # not an old name of this venue: unknown key
