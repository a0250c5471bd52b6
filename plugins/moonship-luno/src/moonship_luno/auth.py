"""Luno authentication: HTTP Basic on REST, a credentials frame first on every websocket."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key id and its secret (the secret never appears in repr or logs)."""

    key_id: str
    secret: str = field(repr=False)

    @property
    def basic(self) -> str:
        """The `Authorization` header value."""
        token = base64.b64encode(f"{self.key_id}:{self.secret}".encode()).decode()
        return f"Basic {token}"

    @property
    def ws_frame(self) -> str:
        """The first frame a Luno websocket expects."""
        return orjson.dumps({"api_key_id": self.key_id, "api_key_secret": self.secret}).decode()


def resolve(settings: Any, market_extra: Mapping[str, Any]) -> Credentials | None:
    """The market's own `api_key`/`api_secret`, else the `moonship.luno` section's; None if neither."""
    key = market_extra.get("api_key") or getattr(settings, "api_key", None)
    secret = market_extra.get("api_secret") or getattr(settings, "api_secret", None)
    if not key or not secret:
        return None
    return Credentials(str(key), str(secret))
