"""Signing: the worked examples of exchanges.md section 1.2 as vectors, and the client's signed requests."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import pytest
from moonship_binance.auth import Credentials, sign, ws_signature

SECRET = "sim-binance-secret-0001"
PAYLOAD = (
    "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01000000&price=50000.00"
    "&recvWindow=5000&timestamp=1700000000000"
)


def test_rest_signature_vector() -> None:
    assert sign(SECRET, PAYLOAD) == "b43419d4e9e2285d5e8ffad216f0eb1ef664da9d0c8ae426b9f88728406c5d7f"


def test_binance_documented_key_pair() -> None:
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
        "&timestamp=1499827319559"
    )
    assert sign(secret, payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_websocket_api_signature_sorts_params_and_includes_api_key() -> None:
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01000000",
        "price": "50000.00",
        "recvWindow": 5000,
        "timestamp": 1700000000000,
        "apiKey": "sim-binance-key-0001",
    }
    assert ws_signature(SECRET, params) == "8d93dfa90ad5afb25f93ace0681028cefcd9c4458c5c19db75701de283fbd388"
    subscribe = {"apiKey": "sim-binance-key-0001", "timestamp": 1700000000000}
    assert (
        ws_signature(SECRET, subscribe) == "36a84dabfd4258c1da5eedd549e2941016294fd260a7ca6c568bacc2b928a72f"
    )
    assert ws_signature(SECRET, {**subscribe, "signature": "ignored"}) == ws_signature(SECRET, subscribe)


@pytest.mark.parametrize("value", ["a b", "é", "x&y=z"])
def test_non_ascii_and_reserved_characters_are_percent_encoded_before_signing(value: str) -> None:
    query = urlencode([("newClientOrderId", value)])
    assert sign(SECRET, query) == hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    assert "&" not in query.split("=", 1)[1] and " " not in query


def test_secret_never_in_repr() -> None:
    assert SECRET not in repr(Credentials("key", SECRET))
