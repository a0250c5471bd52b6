"""Signing vectors: VALR's documented sample and the worked examples of exchanges.md section 3.2."""

from __future__ import annotations

import pytest
from moonship_valr.auth import sign

from .harness import local_signer

SECRET = "sim-valr-secret-0001"


def test_reproduces_valrs_documented_sample_signature() -> None:
    secret = "4961b74efac86b25cce8fbe4c9811c4c7a787b7a5996660afcc2e287ad864363"
    assert sign(secret, 1558014486185, "GET", "/v1/account/balances") == (
        "9d52c181ed69460b49307b7891f04658e938b21181173844b5018b2fe783a6d4"
        "c62b8e67a03de4d099e7437ebfabe12c56233b73c6a0cc0f7ae87e05f6289928"
    )


@pytest.mark.parametrize(
    ("verb", "path", "body", "expected"),
    [
        (
            "GET",
            "/v1/account/balances",
            "",
            "eb725d3a87cfb05ed71f6f232041d516720ee14266a0995644277742e3f40f57"
            "d85ac9a067f832f8d575936bf9fd53fe4a38fbe296b93adf91f61cb4da6da424",
        ),
        (
            "POST",
            "/v1/orders/limit",
            '{"side":"BUY","quantity":"0.01","price":"950000","pair":"BTCZAR","postOnly":true,"timeInForce":"GTC"}',
            "8798bce9b61f75f25b62b2d3802d4ef868d1455cf6c06ecdea8b92b8557098a8"
            "ac3651ab30ddac1a57b0e06e994255f9f1096e44d7a5c1dc27b478737c3194af",
        ),
        (
            "GET",
            "/v1/account/balances?excludeZeroBalances=true",
            "",
            "c7d8f40f18383f4a9620fcc0166a14daaee757a824eee278378a60a07036b280"
            "bb80182270bf80477bd6b80f801110ec1a8749f58371a318c9831a75fca73dfc",
        ),
        (
            "get",  # the verb is upper-cased
            "/ws/account",
            b"",
            "50f731a75173b7f9a33944dec45a134734f3bb8baa6eb020a715247978e27f90"
            "65684d919f4c5d129e5b9da430ce90da054828f242127ba06250328d7080d2d4",
        ),
    ],
)
def test_worked_examples(verb: str, path: str, body: str | bytes, expected: str) -> None:
    assert sign(SECRET, "1700000000000", verb, path, body) == expected


def test_sub_account_is_signed_and_sent() -> None:
    signer = local_signer(key="key", secret=SECRET, sub_account="123456")
    headers = signer.headers("GET", "/v1/account/balances")
    ts = headers["X-VALR-TIMESTAMP"]
    assert headers["X-VALR-SUB-ACCOUNT-ID"] == "123456"
    assert headers["X-VALR-SIGNATURE"] == sign(SECRET, ts, "GET", "/v1/account/balances", "", "123456")
    assert headers["X-VALR-SIGNATURE"] != sign(SECRET, ts, "GET", "/v1/account/balances")
    assert "X-VALR-SUB-ACCOUNT-ID" not in local_signer(key="key", secret=SECRET).headers("GET", "/x")
    assert SECRET not in repr(signer)


def test_clock_offset_moves_the_timestamp() -> None:
    signer = local_signer(-3_600_000, key="key", secret=SECRET)
    stamp = int(signer.headers("GET", "/x")["X-VALR-TIMESTAMP"])
    assert abs(stamp - signer.server_time.now_ms()) < 1000
    assert stamp < local_signer(key="key", secret=SECRET).server_time.now_ms() - 3_000_000
