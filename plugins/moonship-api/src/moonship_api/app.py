"""The Starlette application: endpoints, session check, error mapping and access log."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moonship_core import (
    MAX_DEPTH,
    METRICS_CONTENT_TYPE,
    STRATEGY_NAME_RULE,
    CommandTimeout,
    ControlError,
    ControlPlane,
    EngineUnavailable,
    SharedCache,
    json_dumps,
    printable,
    render_metrics,
    too_deep,
    utc_now,
    valid_strategy_name,
)

from .accesslog import AccessLogFormat, AccessLogMiddleware
from .auth import COOKIE_NAME, Credentials, LoginThrottle, Sessions, Throttled
from .openapi import OPENAPI
from .transport import MAX_HEADER_BYTES

MAX_BODY = 1 << 20
PUBLIC_PATHS = frozenset({"/login", "/openapi.json", "/", "/health"})
#: the dashboard's files (public: the data they show needs the session)
STATIC = Path(__file__).parent / "static"
STATIC_PREFIX = "/static/"
#: seconds between two updates of the dashboard's event stream
DASHBOARD_INTERVAL = 1.0
#: seconds /health gives the shared cache to answer
HEALTH_TIMEOUT = 3.0
#: the dashboard's page: its own scripts and styles only, never framed
DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}
#: methods a forged cross-site request could use to change something
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: where the auth middleware leaves the session token for the endpoints
SESSION_KEY = "moonship.session"
_COOKIE_ATTRIBUTES = "HttpOnly; Path=/; SameSite=Strict; Secure"

Endpoint = Callable[[Request], Awaitable[Response]]


class JsonResponse(Response):
    """JSON with Decimals as exact text and datetimes as ISO-8601 (the shared cache's encoding)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_dumps(content)


class ApiError(Exception):
    """An error reply: `{"error": message, "status": status}`."""

    def __init__(self, message: str, status: int, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers


def error_response(message: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return JsonResponse({"error": message, "status": status}, status, headers)


def request_token(headers: Headers) -> str | None:
    """The session token: `Authorization: Bearer` first, else the session cookie."""
    return session_token(headers)[0]


def session_token(headers: Headers) -> tuple[str | None, bool]:
    """The session token (`Authorization: Bearer` first, else the session cookie) and whether it came from
    the cookie, i.e. whether a browser may have attached it on its own."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return token.strip() or None, False
    for cookie in headers.getlist("cookie"):
        for pair in cookie.split(";"):
            name, _, value = pair.strip().partition("=")
            if name == COOKIE_NAME and value:
                return value, True
    return None, False


def cross_site_problem(method: str, headers: Headers) -> ApiError | None:
    """Why a request authenticated by the session cookie may have been forged by another site, or None.

    State-changing methods must say `Content-Type: application/json` (a cross-site form or a CORS-simple
    fetch cannot) and, where the browser says where the request comes from, come from this origin:
    `Sec-Fetch-Site` same-origin or none (typed by the user), an `Origin` whose host[:port] is the `Host`."""
    if method not in STATE_CHANGING:
        return None
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        return ApiError("Content-Type must be application/json with the session cookie", 415)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin", "none"):
        return ApiError("Cross-site request refused", 403)
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin.strip())
        host = headers.get("host", "").strip().lower()
        if parts.scheme not in ("http", "https") or not host or parts.netloc.lower() != host:
            return ApiError("Cross-site request refused", 403)
    return None


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (at most MAX_BODY bytes, nested at most MAX_DEPTH levels)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise ApiError("Request body too large", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError("Request body too large", 413)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ApiError("Missing or bad request body", 400)
    if too_deep(data, MAX_DEPTH):
        raise ApiError(f"Request body nested more than {MAX_DEPTH} levels deep", 400)
    return data


def _field(body: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise ApiError(f"Missing or bad {name} field", 400)
    return value


class ErrorGuard:
    """Turns every exception into an error reply; nothing but the message ever reaches the client."""

    def __init__(self, app: ASGIApp, logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            return
        except Exception as exc:
            response = self.response_for(exc)
            if started:
                self.logger.error("error after the response started: %s", type(exc).__name__)
            else:
                await response(scope, receive, send)

    def response_for(self, exc: Exception) -> Response:
        if isinstance(exc, ApiError):
            return error_response(exc.message, exc.status, exc.headers)
        if isinstance(exc, CommandTimeout):
            return error_response("Operation timeout", 504)
        if isinstance(exc, EngineUnavailable):
            return error_response(f"Engine {exc.engine!r} is not running", 404)
        if isinstance(exc, ControlError):
            return error_response(str(exc), exc.status if exc.status in (400, 404) else 500)
        if isinstance(exc, OSError):  # ConnectionError and TimeoutError included
            self.logger.error("shared cache or message bus unavailable: %s", exc)
            return error_response("Shared cache or message bus unavailable", 503)
        self.logger.exception("internal error")
        return error_response("Internal server error", 500)


class RequestCheck:
    """431 for headers over MAX_HEADER_BYTES in all (h11 bounds only what arrives incomplete); 400 for a
    request whose client address is not an IP address: uvicorn takes the client from a trusted proxy's
    X-Forwarded-For as it stands, and login throttling counts per address, so a forged string must not
    become a fresh client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
                await error_response("Request headers too large", 431)(scope, receive, send)
                return
            if scope.get("client") and not _is_ip(scope["client"][0]):
                await error_response("Bad X-Forwarded-For: not an IP address", 400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class SessionCheck:
    """Every path but the public ones needs a live session; otherwise 401 "Access denied". GET /metrics also
    takes the bearer token `metrics_token`."""

    def __init__(self, app: ASGIApp, sessions: Sessions, metrics_token: str | None = None) -> None:
        self.app = app
        self.sessions = sessions
        self.metrics_token = metrics_token.encode() if metrics_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in PUBLIC_PATHS and not path.startswith(STATIC_PREFIX):
            request_headers = Headers(scope=scope)
            token, by_cookie = session_token(request_headers)
            if (
                path == "/metrics"
                and self.metrics_token is not None
                and token is not None
                and not by_cookie
                and hmac.compare_digest(token.encode(), self.metrics_token)
            ):
                await self.app(scope, receive, send)
                return
            if token is None or not await self.sessions.touch(token):
                headers = {"WWW-Authenticate": 'Bearer realm="moonship"'}
                await error_response("Access denied", 401, headers)(scope, receive, send)
                return
            problem = cross_site_problem(scope["method"], request_headers) if by_cookie else None
            if problem is not None:
                await error_response(problem.message, problem.status)(scope, receive, send)
                return
            scope[SESSION_KEY] = token
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = http.HTTPStatus(exc.status_code).phrase.capitalize()
    return error_response(message, exc.status_code, exc.headers)


class Api:
    """The endpoints, over the control plane and the shared cache."""

    def __init__(
        self,
        control: ControlPlane,
        cache: SharedCache,
        credentials: Credentials,
        idle_session_expiry: float,
        access_log_format: AccessLogFormat,
        logger: logging.Logger,
        session_lifetime: float = 12,
        metrics_token: str | None = None,
    ) -> None:
        self.control = control
        self.credentials = credentials
        self.sessions = Sessions(cache, idle_session_expiry, session_lifetime, credentials.fingerprint)
        self.throttle = LoginThrottle(cache)
        self.logger = logger
        self._openapi = orjson.dumps(OPENAPI)
        self._index = (STATIC / "index.html").read_bytes()
        #: set when the service stops: the dashboard's streams end
        self.closing = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/engines", self.list_engines, methods=["GET"]),
                Route("/engines/{engine}/trading-state", self.engine_trading_state, methods=["POST"]),
                Route("/strategies", self.list_strategies, methods=["GET"]),
                Route(
                    "/strategies/{engine}/{strategy}",
                    self._by_method(
                        GET=self.get_strategy, POST=self.add_strategy, PATCH=self.update_strategy,
                        DELETE=self.remove_strategy,
                    ),
                    methods=["GET", "POST", "PATCH", "DELETE"],
                ),
                Route("/strategies/{engine}/{strategy}/start", self.start_strategy, methods=["POST"]),
                Route("/strategies/{engine}/{strategy}/stop", self.stop_strategy, methods=["POST"]),
                Route("/orders", self.list_orders, methods=["GET"]),
                Route("/fills", self.list_fills, methods=["GET"]),
                Route(
                    "/strategies/{engine}/{strategy}/trading-state", self.strategy_trading_state,
                    methods=["POST"],
                ),
                Route("/openapi.json", self.openapi, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/alerts", self.list_alerts, methods=["GET"]),
                Route("/events", self.events, methods=["GET"]),
                Route("/", self.dashboard, methods=["GET"]),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ],
            middleware=[
                Middleware(AccessLogMiddleware, access_log_format, logger.getChild("access")),
                Middleware(ErrorGuard, logger),
                Middleware(RequestCheck),
                Middleware(SessionCheck, self.sessions, metrics_token),
            ],
            exception_handlers={HTTPException: _http_error},
        )

    @staticmethod
    def _by_method(**endpoints: Endpoint) -> Endpoint:
        async def dispatch(request: Request) -> Response:
            return await endpoints["GET" if request.method == "HEAD" else request.method](request)

        return dispatch

    # ------------------------------------------------------------------ session
    async def login(self, request: Request) -> Response:
        body = await read_json(request)
        user: str = _field(body, "user", str)
        password: str = _field(body, "password", str)
        client = request.client.host if request.client else "unknown"
        try:
            async with self.throttle.attempt(user, client):
                if not await self.credentials.check(user, password):
                    await self.throttle.failed(user, client)
                    self.logger.warning("failed login from %s", printable(client))
                    raise ApiError("Invalid user or password", 401)
                await self.throttle.succeeded(user, client)
        except Throttled as exc:
            headers = {"Retry-After": str(exc.retry_after)}
            raise ApiError("Too many failed logins: try again later", 429, headers) from None
        previous = request_token(request.headers)
        if previous is not None:  # a new token at every login: no session fixation
            await self.sessions.delete(previous)
        token = await self.sessions.create(user)
        self.logger.info("login from %s", printable(client))
        response = JsonResponse({"session_token": token})
        response.headers.append("set-cookie", f"{COOKIE_NAME}={token}; {_COOKIE_ATTRIBUTES}")
        return response

    async def logout(self, request: Request) -> Response:
        await self.sessions.delete(request.scope[SESSION_KEY])
        response = JsonResponse({})
        response.headers.append("set-cookie", f"{COOKIE_NAME}=; Max-Age=0; {_COOKIE_ATTRIBUTES}")
        return response

    # ------------------------------------------------------------------ strategies
    async def list_strategies(self, request: Request) -> Response:
        strategies = await self.control.strategies(dict(request.query_params))
        return JsonResponse({"strategies": strategies})

    async def get_strategy(self, request: Request) -> Response:
        engine, name = _names(request)
        # like the list, only engines that are running: a stopped engine's last state is not served
        if engine not in await self.control.engines():
            raise ApiError("No such strategy", 404)
        return JsonResponse(await self.control.strategy(engine, name))

    async def add_strategy(self, request: Request) -> Response:
        config = await _config(request)
        return _info(await self.control.add(*_names(request), config))

    async def update_strategy(self, request: Request) -> Response:
        config = await _config(request)
        return _info(await self.control.update(*_names(request), config))

    async def remove_strategy(self, request: Request) -> Response:
        await self.control.remove(*_names(request))
        return JsonResponse({})

    async def start_strategy(self, request: Request) -> Response:
        return _info(await self.control.start(*_names(request)))

    async def stop_strategy(self, request: Request) -> Response:
        return _info(await self.control.stop(*_names(request)))

    # ------------------------------------------------------------------ the journal
    async def list_orders(self, request: Request) -> Response:
        engine, query = _journal_query(request, ("engine", "strategy", "status", "since", "limit"))
        if query.get("status") not in (None, "open", "closed"):
            raise ApiError("Bad status: open or closed", 400)
        return JsonResponse({"orders": await self.control.orders(engine, **query)})

    async def list_fills(self, request: Request) -> Response:
        engine, query = _journal_query(request, ("engine", "strategy", "since", "limit"))
        return JsonResponse({"fills": await self.control.fills(engine, **query)})

    # ------------------------------------------------------------------ trading state
    async def list_engines(self, request: Request) -> Response:
        return JsonResponse({"engines": await self.control.engine_states()})

    async def engine_trading_state(self, request: Request) -> Response:
        state, reason = await _trading_state(request)
        engine: str = request.path_params["engine"]
        result = await self.control.trading_state(engine, state, reason)
        self.logger.warning("engine %s trading state %s by API: %s", printable(engine, 80), state,
                            printable(reason))
        return JsonResponse({"name": engine, **(result if isinstance(result, dict) else {})})

    async def strategy_trading_state(self, request: Request) -> Response:
        engine, name = _names(request)
        state, reason = await _trading_state(request)
        result = await self.control.trading_state(engine, state, reason, name)
        self.logger.warning("strategy %s of engine %s trading state %s by API: %s", name,
                            printable(engine, 80), state, printable(reason))
        return _info(result)

    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi, media_type="application/json")

    # ------------------------------------------------------------------ observability
    async def metrics(self, request: Request) -> Response:
        """Every engine's metrics in the Prometheus text format (rendered off the event loop: ~60 ms for 200
        strategies, see bench/bench_metrics.py)."""
        text = await asyncio.to_thread(render_metrics, await self.control.metrics())
        return Response(text, media_type=METRICS_CONTENT_TYPE)

    async def health(self, request: Request) -> Response:
        """200 with the running engines while the shared cache answers, else 503 (no session needed)."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                engines = await self.control.engine_states()
        except (ControlError, OSError) as exc:
            self.logger.warning("health check: shared cache unavailable: %s", exc)
            return JsonResponse({"status": "unavailable", "error": "Shared cache unavailable"}, 503)
        states = {e["name"]: {"trading_state": e["trading_state"], "started": e["started"]} for e in engines}
        return JsonResponse({"status": "ok", "engines": states})

    async def list_alerts(self, request: Request) -> Response:
        return JsonResponse({"alerts": await self.control.alerts()})

    async def dashboard(self, request: Request) -> Response:
        return Response(self._index, media_type="text/html; charset=utf-8", headers=DASHBOARD_HEADERS)

    async def events(self, request: Request) -> Response:
        """Server-sent events for the dashboard: the whole picture (engines, strategies, prices, alerts)
        every DASHBOARD_INTERVAL seconds while the session lives."""
        token = request.scope[SESSION_KEY]

        async def stream() -> AsyncIterator[bytes]:
            while not self.closing.is_set() and await self.sessions.alive(token):
                try:
                    yield b"data: " + json_dumps(await self._picture()) + b"\n\n"
                except (ControlError, OSError):
                    yield b'event: unavailable\ndata: "Shared cache unavailable"\n\n'
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), DASHBOARD_INTERVAL)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def _picture(self) -> dict[str, Any]:
        metrics = await self.control.metrics()
        return {
            "time": utc_now(),
            "engines": await self.control.engine_states(),
            "strategies": await self.control.strategies(),
            "prices": {m.name: m.counters.get("prices", {}) for m in metrics if m.up},
            "alerts": await self.control.alerts(),
        }


def _names(request: Request) -> tuple[str, str]:
    engine: str = request.path_params["engine"]
    name: str = request.path_params["strategy"]
    if not valid_strategy_name(name):
        raise ApiError(f"Bad strategy name: it must be {STRATEGY_NAME_RULE}", 400)
    return engine, name


async def _config(request: Request) -> dict[str, Any]:
    config: dict[str, Any] = _field(await read_json(request), "config", dict)
    return config


def _journal_query(request: Request, allowed: tuple[str, ...]) -> tuple[str | None, dict[str, Any]]:
    """The engine (None: every running engine) and the journal query of a GET /orders or /fills."""
    params = request.query_params
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ApiError(f"Unknown query parameter: {printable(unknown[0])}", 400)
    query: dict[str, Any] = {k: params[k] for k in allowed if k in params and k != "engine"}
    if "strategy" in query and not valid_strategy_name(query["strategy"]):
        raise ApiError(f"Bad strategy name: it must be {STRATEGY_NAME_RULE}", 400)
    if "limit" in query:
        if not query["limit"].isdigit():
            raise ApiError("Bad limit: a whole number", 400)
        query["limit"] = int(query["limit"])
    return params.get("engine"), query


#: the trading states a client may ask for
TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")


async def _trading_state(request: Request) -> tuple[str, str]:
    """The `{"state", "reason"?}` body of a trading-state request."""
    body = await read_json(request)
    unknown = sorted(set(body) - {"state", "reason"})
    if unknown:
        raise ApiError(f"Unknown field: {printable(unknown[0], 80)}", 400)
    state = body.get("state")
    if state not in TRADING_STATES:
        raise ApiError("Missing or bad state field: ACTIVE, REDUCING or HALTED", 400)
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise ApiError("Missing or bad reason field", 400)
    return state, reason


def _info(result: Any) -> Response:
    return JsonResponse(result if isinstance(result, dict) else {})
