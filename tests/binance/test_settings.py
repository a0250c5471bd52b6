"""`moonship.binance` settings: production by default, the spot testnet with `testnet: true`, explicit URLs
win, and bad values name the property."""

from __future__ import annotations

import pytest
from moonship_binance.client import BinanceSettings

from moonship_core import ConfigError, validate_model


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
