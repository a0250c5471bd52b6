"""`moonship.api` settings: the seed's property names and defaults, plus `host` and `trusted_proxies`."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from .accesslog import DEFAULT_FORMAT, AccessLogFormat

_BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class ApiSettings(BaseModel):
    """The `moonship.api` config section."""

    model_config = ConfigDict(extra="forbid")

    #: interface to listen on: loopback unless set ("0.0.0.0" every IPv4 interface, "::" IPv4 and IPv6)
    host: str = "127.0.0.1"
    #: TCP port; `$PORT` in the YAML reads the environment variable; 0 picks a free port
    port: Annotated[int, BeforeValidator(_strip), Field(ge=0, le=65535)] = 8080
    #: the one user's name (required to start the API)
    user: str | None = Field(default=None, min_length=1)
    #: bcrypt hash of the password
    password: SecretStr | None = None
    #: a bearer token GET /metrics accepts besides a session (for Prometheus); at least 16 characters
    metrics_token: SecretStr | None = None
    #: PEM certificate (chain) file: serve HTTPS (with `ssl_key`)
    ssl_cert: str | None = None
    #: PEM private key file of `ssl_cert`
    ssl_key: str | None = None
    #: minutes of inactivity before a session expires; 0: never
    idle_session_expiry: float = Field(default=0, ge=0, allow_inf_nan=False)
    #: hours after login a session ends however much it is used
    session_lifetime: float = Field(default=12, gt=0, le=24 * 366, allow_inf_nan=False)
    #: access log line (aiohttp's tokens: %a %t %P %r %s %b %T %Tf %D %{Header}i %{Header}o %%), logged on
    #: `moonship.api.access` at INFO
    access_log_format: str = DEFAULT_FORMAT
    #: seconds for a request's headers (from the connection's start or the previous response; also the TLS
    #: handshake's limit)
    header_timeout: float = Field(default=10, gt=0, le=3600, allow_inf_nan=False)
    #: seconds for a request's body, from the end of its headers
    body_timeout: float = Field(default=30, gt=0, le=3600, allow_inf_nan=False)
    #: seconds a kept-alive connection may stay idle between requests
    keep_alive_timeout: int = Field(default=5, ge=1, le=3600)
    #: open connections at most (they share the process's file descriptors with the engine); more get 503
    max_connections: int = Field(default=100, ge=1, le=100_000)
    #: proxies whose X-Forwarded-For / X-Forwarded-Proto headers are believed (IP addresses or networks)
    trusted_proxies: Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)] = [
        "127.0.0.1",
        "::1",
    ]

    @field_validator("password")
    @classmethod
    def _bcrypt_hash(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _BCRYPT_HASH.match(value.get_secret_value()):
            raise ValueError("must be a bcrypt hash (see the moonship-api README)")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry.strip() == "*":
                raise ValueError(
                    "'*' would believe X-Forwarded-For from any client (anyone could pick their address and "
                    "escape login throttling): list the proxies' addresses or networks"
                )
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return [entry.strip() for entry in value]

    @field_validator("access_log_format")
    @classmethod
    def _known_tokens(cls, value: str) -> str:
        AccessLogFormat(value)
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.ssl_cert is None) != (self.ssl_key is None):
            raise ValueError("ssl_cert and ssl_key must be set together")
        return self
