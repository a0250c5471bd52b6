"""Binance request signing (HMAC-SHA256): REST query strings and WebSocket API params."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode


@dataclass(frozen=True)
class Credentials:
    """An API key pair; the secret never appears in a repr or a log line."""

    api_key: str
    secret: str = field(repr=False)


def sign(secret: str, payload: str) -> str:
    """Lowercase hex HMAC-SHA256 of `payload` keyed with `secret`."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def encode(params: Sequence[tuple[str, str]]) -> str:
    """Percent-encoded `k=v&...` in the given order (what REST signs and sends)."""
    return urlencode(params)


def ws_signature(secret: str, params: Mapping[str, str | int]) -> str:
    """WebSocket API signature: every param but `signature`, sorted by name, `k=v` joined by `&`."""
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    return sign(secret, payload)
