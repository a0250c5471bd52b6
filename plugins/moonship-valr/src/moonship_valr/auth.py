"""VALR request signing: HMAC-SHA512 over timestamp + VERB + path-with-query + body + sub-account id."""

from __future__ import annotations

import hashlib
import hmac

from moonship_core import ServerClock


def sign(
    secret: str, timestamp: int | str, verb: str, path: str, body: str | bytes = b"", sub_account: str = ""
) -> str:
    """VALR's X-VALR-SIGNATURE: lowercase hex HMAC-SHA512 keyed with the secret's UTF-8 bytes.

    `path` includes the version prefix and any query string; `body` must be the exact bytes sent.
    """
    body_bytes = body.encode() if isinstance(body, str) else body
    message = f"{timestamp}{verb.upper()}{path}".encode() + body_bytes + sub_account.encode()
    return hmac.new(secret.encode(), message, hashlib.sha512).hexdigest()


class Signer:
    """One set of credentials (optionally a sub-account), stamping requests with VALR's clock (the engine's
    one ServerClock of VALR, synced from /v1/public/time)."""

    def __init__(
        self, api_key: str, api_secret: str, server_time: ServerClock, sub_account: str = ""
    ) -> None:
        self.api_key = api_key
        self._secret = api_secret
        self.server_time = server_time
        self.sub_account = sub_account

    def headers(
        self, verb: str, path: str, body: bytes = b"", sub_account: str | None = None
    ) -> dict[str, str]:
        """The X-VALR headers for one request (`sub_account` overrides the signer's own)."""
        sub = self.sub_account if sub_account is None else sub_account
        timestamp = str(self.server_time.now_ms())
        headers = {
            "X-VALR-API-KEY": self.api_key,
            "X-VALR-SIGNATURE": sign(self._secret, timestamp, verb, path, body, sub),
            "X-VALR-TIMESTAMP": timestamp,
        }
        if sub:
            headers["X-VALR-SUB-ACCOUNT-ID"] = sub
        return headers

    def __repr__(self) -> str:  # never show the secret
        return f"Signer(api_key={self.api_key[:6]}…, sub_account={self.sub_account!r})"
