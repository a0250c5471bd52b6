"""Plugin registration, settings, credentials (per-market overrides), the shared hub and error mapping."""

from __future__ import annotations

from decimal import Decimal

import pytest
from exchanges.luno import LunoSimulator
from moonship_luno import constants
from moonship_luno.auth import Credentials
from moonship_luno.client import LunoClient, LunoSettings

from moonship_core import (
    AuthenticationError,
    ClientContext,
    ConfigError,
    DuplicateClientOrderId,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    MarketConfig,
    NetworkError,
    OrderNotFound,
    OrderRequest,
    PostOnlyRejected,
    RateLimited,
    Side,
)
from moonship_core.config import parse_config
from moonship_core.plugins import Plugins
from moonship_core.testing import until

from .conftest import PAIR, make_client

D = Decimal


def test_the_entry_point_provides_luno_and_the_seed_class_path_resolves() -> None:
    plugins = Plugins.load()
    assert plugins.resolve("market_clients", "luno") is LunoClient
    assert plugins.resolve("market_clients", "moonship.client.luno.LunoClient") is LunoClient


def test_settings_are_validated_with_the_property_path() -> None:
    plugins = Plugins.load()
    config = parse_config(
        {"moonship": {"luno": {"api_key": "k", "rest_url": "http://x", "bogus": 1}, "markets": {}}}
    )
    with pytest.raises(ConfigError) as error:
        plugins.check(config)
    assert "moonship.luno.bogus" in str(error.value)


def test_a_raw_section_given_to_the_client_is_validated_not_dropped() -> None:
    def client(settings: dict[str, object]) -> LunoClient:
        config = MarketConfig.model_validate({"client": "luno", "symbol": PAIR})
        context = ClientContext(PAIR.lower(), config, settings, Plugins().resolve)  # type: ignore[arg-type]
        return LunoClient(context, None)  # type: ignore[arg-type]

    assert client({"rest_url": "http://127.0.0.1:9"}).settings.rest_url == "http://127.0.0.1:9"
    assert client({}).settings.rest_url == LunoSettings().rest_url
    with pytest.raises(ConfigError) as error:
        client({"rate_limit": 0, "api_kye": "k"})
    assert str(error.value) == (
        "moonship.luno.rate_limit: input should be greater than 0\n"
        "moonship.luno.api_kye: unknown property; did you mean api_key?"
    )


def test_basic_auth_and_websocket_credentials_match_the_wire_reference() -> None:
    creds = Credentials("sim-luno-keyid", "sim-luno-secret")
    assert creds.basic == "Basic c2ltLWx1bm8ta2V5aWQ6c2ltLWx1bm8tc2VjcmV0"
    assert creds.ws_frame == '{"api_key_id":"sim-luno-keyid","api_key_secret":"sim-luno-secret"}'
    assert "sim-luno-secret" not in repr(creds)


@pytest.mark.parametrize(
    ("status", "code", "expected", "rule"),
    [
        (400, "ErrInsufficientFunds", InsufficientFunds, None),
        (400, "ErrInsufficientBalance", InsufficientFunds, None),
        (400, "ErrOrderCanceled", PostOnlyRejected, "post_only"),
        (400, "ErrPostOnlyNotAllowed", InvalidOrder, "post_only"),
        (400, "ErrPostOnlyMode", MarketClosed, None),
        (400, "ErrMarketUnavailable", MarketClosed, None),
        (400, "ErrUnderMaintenance", MarketClosed, None),
        (400, "ErrVolumeTooLow", InvalidOrder, "min_quantity"),
        (400, "ErrVolumeTooHigh", InvalidOrder, "max_quantity"),
        (400, "ErrPriceTooLow", InvalidOrder, "min_price"),
        (400, "ErrVolumeDenominationNotAllowed", InvalidOrder, "lot_size"),
        (400, "ErrPriceDenominationNotAllowed", InvalidOrder, "tick_size"),
        (400, "ErrNotEnoughLiquidity", InvalidOrder, "liquidity"),
        (400, "ErrInvalidMarketPair", InvalidOrder, "symbol"),
        (404, "ErrOrderNotFound", OrderNotFound, None),
        (400, "ErrCannotStopUnknownOrNonPendingOrder", OrderNotFound, None),
        (409, "ErrDuplicateClientOrderID", DuplicateClientOrderId, None),
        (401, "ErrUnauthorised", AuthenticationError, None),
        (403, "ErrInsufficientPerms", AuthenticationError, None),
        (401, "", AuthenticationError, None),
        (404, "", OrderNotFound, None),
        (409, "", DuplicateClientOrderId, None),
        (400, "ErrSomethingNew", ExchangeError, None),
    ],
)
def test_error_codes_map_onto_the_taxonomy(status: int, code: str, expected: type, rule: str | None) -> None:
    error = constants.ERRORS.error(status, code or None, "message")
    assert type(error) is expected
    if isinstance(error, InvalidOrder):
        assert error.rule == rule and error.code == code


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(429, "ErrTooManyRequests", RateLimited), (503, "ErrInternal", NetworkError)],
)
async def test_rate_limits_and_server_errors_are_network_outcomes(
    sim: LunoSimulator, status: int, code: str, expected: type
) -> None:
    """A 429 (Retry-After as an HTTP-date) is RateLimited, a 5xx a NetworkError: the call may have run."""
    client, _ = make_client(sim)
    sim.faults.retry_after = "Wed, 21 Oct 2015 07:28:00 GMT"  # an HTTP-date in the past: no wait
    if status == 429:
        sim.faults.rate_limited = 3  # every attempt
    else:
        sim.faults.fail_before_execute = 1
    with pytest.raises(expected):
        await client.rest.call("POST", "/api/1/postorder", [("pair", PAIR)])
    await client.close()


@pytest.mark.anyio
async def test_markets_share_one_hub_and_a_market_may_use_its_own_key(sim: LunoSimulator) -> None:
    sim.exchange.add_user("desk-2", "secret-2", {"XBT": "1", "ZAR": "500000"})
    shared: dict[str, object] = {}
    main, _ = make_client(sim, shared=shared)
    desk, _ = make_client(sim, shared=shared, extra={"api_key": "desk-2", "api_secret": "secret-2"})
    assert main.session is desk.session and main.rest.limits is desk.rest.limits
    assert [(p.limit, p.period) for p in main.rest.limits.pools] == [(300, 60.0), (25, 5.0)]
    assert desk.credentials is not None and desk.credentials.key_id == "desk-2"
    for client in (main, desk):
        await client.get_market_info()
        await client.connect()
    assert main.user_stream is not desk.user_stream  # one user stream per set of credentials
    await until(lambda: sim.stats["user_connects"] == 2, what="two user streams")
    order = await desk.place_order(OrderRequest.limit(Side.BUY, D("0.01"), D("900000")))
    assert sim.exchange.orders[order.id].user.key_id == "desk-2"
    assert (await desk.get_balances())["ZAR"].free == D("491000")
    for client in (main, desk):
        await client.close()


@pytest.mark.anyio
async def test_streams_need_credentials(sim: LunoSimulator) -> None:
    client, _ = make_client(sim, api_key=None, api_secret=None)
    assert (await client.get_market_info()).symbol == PAIR  # public data works without a key
    with pytest.raises(ConfigError, match="api_key"):
        await client.connect()
    with pytest.raises(AuthenticationError):
        await client.get_balances()
    await client.close()
