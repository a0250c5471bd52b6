"""`moonship.binance` settings: production by default, the spot testnet with `testnet: true`, explicit URLs
win, and bad values name the property."""

from __future__ import annotations

from functools import partial

import pytest
from moonship_binance.client import BinanceClient, BinanceSettings

from moonship_core import ClientContext, ConfigError, MarketConfig, validate_model
from moonship_core.plugins import Plugins


def test_production_urls_by_default() -> None:
    assert BinanceSettings().urls() == (
        "https://api.binance.com",
        "wss://stream.binance.com:9443",
        "wss://ws-api.binance.com:443/ws-api/v3",
    )


def test_testnet_switches_every_url_not_given() -> None:
    assert BinanceSettings(testnet=True).urls() == (
        "https://testnet.binance.vision",
        "wss://stream.testnet.binance.vision",
        "wss://ws-api.testnet.binance.vision/ws-api/v3",
    )
    rest, ws, api = BinanceSettings(testnet=True, rest_url="http://127.0.0.1:9").urls()
    assert (rest, ws) == ("http://127.0.0.1:9", "wss://stream.testnet.binance.vision")
    assert api == "wss://ws-api.testnet.binance.vision/ws-api/v3"


def test_bad_setting_names_the_property() -> None:
    with pytest.raises(ConfigError, match=r"moonship.binance.recv_window: "):
        validate_model(BinanceSettings, {"recv_window": 0}, "moonship.binance")
    with pytest.raises(ConfigError, match=r"moonship.binance.api_kye: unknown property"):
        validate_model(BinanceSettings, {"api_kye": "x"}, "moonship.binance")


def test_a_raw_section_given_to_the_client_is_a_config_error_worded_by_the_core() -> None:
    config = MarketConfig.model_validate({"client": "binance", "symbol": "BTCUSDT"})
    resolve = partial(Plugins.load(entry_points=False).resolve, "market_clients")
    context = ClientContext("btc", config, {"recv_window": 0, "api_kye": "x"}, resolve)
    with pytest.raises(ConfigError) as err:
        BinanceClient(context, None)  # type: ignore[arg-type]
    assert str(err.value) == (
        "moonship.binance.recv_window: input should be greater than 0\n"
        "moonship.binance.api_kye: unknown property; did you mean api_key?"
    )
