"""Access log lines in aiohttp's format language (the seed's `moonship.api.access_log_format`).

Tokens: `%a` remote address, `%t` request start time, `%P` process id, `%r` request line, `%s` status,
`%b` response body size in bytes, `%T` request time in seconds, `%Tf` the same with fractions, `%D` request
time in microseconds, `%{NAME}i` a request header, `%{NAME}o` a response header, `%%` a percent sign.
Credentials (Authorization, Cookie, Set-Cookie headers) are never written: they show as `-`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moonship_core import printable

DEFAULT_FORMAT = '%a %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"'
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

_TOKEN = re.compile(r"%(?:\{([^}]*)\}([io])|(Tf|[atPrsbTD%])|(.?))", re.DOTALL)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True)
class AccessRecord:
    """What one access log line can show about a request and its response."""

    remote: str
    started: float
    request_line: str
    status: int
    size: int
    duration: float
    request_headers: Mapping[str, str]
    response_headers: Mapping[str, str]


Part = Callable[[AccessRecord], str]


def _header(name: str, kind: str) -> Part:
    key = name.lower()
    if key in SECRET_HEADERS:
        return lambda r: "-"
    if kind == "i":
        return lambda r: r.request_headers.get(key, "-")
    return lambda r: r.response_headers.get(key, "-")


_SIMPLE: dict[str, Part] = {
    "a": lambda r: r.remote,
    "t": lambda r: datetime.fromtimestamp(r.started).astimezone().strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "P": lambda r: f"<{os.getpid()}>",
    "r": lambda r: r.request_line,
    "s": lambda r: str(r.status),
    "b": lambda r: str(r.size),
    "T": lambda r: str(round(r.duration)),
    "Tf": lambda r: f"{r.duration:.6f}",
    "D": lambda r: str(round(r.duration * 1_000_000)),
    "%": lambda r: "%",
}


class AccessLogFormat:
    """A compiled format; ValueError names the first unknown token."""

    def __init__(self, fmt: str) -> None:
        self.parts: list[str | Part] = []
        position = 0
        for match in _TOKEN.finditer(fmt):
            self.parts.append(fmt[position : match.start()])
            position = match.end()
            header, kind, simple, unknown = match.groups()
            if unknown is not None:
                raise ValueError(f"unknown access log token {match.group(0)!r}")
            if header is not None:
                if not _HEADER_NAME.match(header):
                    raise ValueError(f"bad header name in access log token {match.group(0)!r}")
                self.parts.append(_header(header, kind))
            else:
                self.parts.append(_SIMPLE[simple])
        self.parts.append(fmt[position:])
        self.parts = [p for p in self.parts if p != ""]

    def format(self, record: AccessRecord) -> str:
        return "".join(p if isinstance(p, str) else p(record) for p in self.parts)


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}


class AccessLogMiddleware:
    """Logs one line per HTTP request on `logger` at INFO, after the response is sent."""

    def __init__(self, app: ASGIApp, fmt: AccessLogFormat, logger: logging.Logger) -> None:
        self.app = app
        self.fmt = fmt
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started, clock = time.time(), time.perf_counter()
        status, size = 500, 0
        response_headers: dict[str, str] = {}

        async def send_logged(message: Message) -> None:
            nonlocal status, size, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = _headers(list(message.get("headers", [])))
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            client = scope.get("client")
            target = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            record = AccessRecord(
                remote=client[0] if client else "-",
                started=started,
                request_line=f"{scope['method']} {target} HTTP/{scope.get('http_version', '1.1')}",
                status=status,
                size=size,
                duration=time.perf_counter() - clock,
                request_headers=_headers(list(scope.get("headers", []))),
                response_headers=response_headers,
            )
            # escaped: a request's path, query or headers cannot forge or hide log lines
            self.logger.info("%s", printable(self.fmt.format(record), 8192))
