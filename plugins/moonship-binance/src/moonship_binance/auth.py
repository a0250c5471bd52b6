"""Binance request signing (HMAC-SHA256) and the server-time offset signed requests are stamped with."""

from __future__ import annotations

import hashlib
import hmac
import time
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


class Clock:
    """Binance server time as this process sees it: local time plus an offset learned from /time."""

    def __init__(self) -> None:
        self.offset_ms = 0
        self.synced_at: float | None = None  # monotonic time of the last sync

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    def adopt(self, server_ms: int, sent_ms: int, received_ms: int) -> None:
        """Set the offset from a /time answer, assuming the server read its clock mid-flight."""
        self.offset_ms = server_ms - (sent_ms + received_ms) // 2
        self.synced_at = time.monotonic()
