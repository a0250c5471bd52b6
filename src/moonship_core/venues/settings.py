"""VenueSettings: the connection settings every venue section shares, under the same names everywhere."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

_log = logging.getLogger("moonship.config")


class VenueSettings(BaseModel):
    """Base of a venue's `moonship.<venue>` settings model. A venue lists its own old key names in `renamed`
    (old → new); they are still read, with a warning naming the new key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: old key name → its new name (per venue)
    renamed: ClassVar[dict[str, str]] = {}

    #: seconds for any REST call or websocket handshake
    request_timeout: float = Field(10.0, gt=0)
    #: no market-data frame for this long on an active market: UNSYNCED, probe the venue, resync
    silence_timeout: float = Field(10.0, gt=0)
    #: longest wait between reconnect attempts (exponential backoff with jitter up to it)
    reconnect_max_delay: float = Field(30.0, gt=0)
    #: seconds between keepalive pings on every websocket
    ping_interval: float = Field(20.0, gt=0)
    #: a ping unanswered this long drops the connection
    pong_timeout: float = Field(10.0, gt=0)
    #: a request that would wait longer than this for its rate limit fails at once (RateLimited)
    rate_limit_max_wait: float = Field(30.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _rename(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not cls.renamed:
            return data
        data = dict(data)
        for old, new in cls.renamed.items():
            if old in data:
                value = data.pop(old)
                _log.warning("config key %r is deprecated: use %r", old, new)
                data.setdefault(new, value)
        return data
