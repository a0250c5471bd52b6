"""ApiService: serves the API with uvicorn inside the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn

from moonship_core import ConfigError, MoonshipError, Service, ServiceContext, bind_listener, validate_model

from .accesslog import AccessLogFormat
from .app import Api
from .auth import Credentials
from .settings import ApiSettings
from .transport import MAX_HEADER_BYTES, ConnectionLimits, GuardedH11Protocol

#: seconds in-flight requests get to finish when the service stops
GRACEFUL_SHUTDOWN = 5
#: seconds a closing TLS connection waits for the client's close_notify
TLS_SHUTDOWN_TIMEOUT = 5
#: headers on every response, uvicorn's own included
RESPONSE_HEADERS = [
    ("Server", "Moonship"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the launcher, tells when it listens, and serves the
    guarded protocol (transport.py) with the TLS handshake limited to the header timeout."""

    def __init__(self, config: uvicorn.Config, limits: ConnectionLimits) -> None:
        super().__init__(config)
        self.limits = limits
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's startup for given sockets, with our protocol and TLS timeouts (lifespan is off)
        config, limits = self.config, self.limits
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:
            return GuardedH11Protocol(config, self.server_state, self.lifespan.state, limits)

        tls: dict[str, Any] = {}
        if config.ssl is not None:
            tls = {"ssl": config.ssl, "ssl_handshake_timeout": limits.header_timeout}
            tls["ssl_shutdown_timeout"] = TLS_SHUTDOWN_TIMEOUT
        self.servers = [
            await loop.create_server(protocol, sock=sock, backlog=config.backlog, **tls)
            for sock in sockets or ()
        ]
        self.started = True
        self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _settings(raw: Any) -> ApiSettings:
    if isinstance(raw, ApiSettings):
        return raw
    return validate_model(ApiSettings, raw or {}, "moonship.api")


class ApiService(Service):
    """The REST API: sessions and login throttling in the shared cache, commands through the control plane."""

    name = "api"
    settings_model = ApiSettings

    def __init__(self, context: ServiceContext) -> None:
        super().__init__(context)
        self.settings = _settings(context.settings)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        #: the listening socket and TLS context preflight() prepared for start()
        self._sock: socket.socket | None = None
        self._tls: ssl.SSLContext | None = None
        #: the application (its sessions and login throttle), once started
        self.api: Api | None = None
        #: the port actually listened on (useful with `port: 0`)
        self.port: int | None = None

    async def preflight(self) -> None:
        """User and password set, certificate and key loadable (ConfigError); the port free (MoonshipError):
        the listening socket is bound now and kept for start()."""
        settings = self.settings
        missing = [f"moonship.api.{n}" for n in ("user", "password") if getattr(settings, n) is None]
        if missing:
            raise ConfigError(
                f"the API needs a user and a bcrypt password hash: {' and '.join(missing)} not set"
            )
        tls = self._tls_context()
        if self._sock is None:
            self._sock = self._listen()
        self._tls = tls

    async def start(self) -> None:
        if self._sock is None:
            await self.preflight()
        settings, tls, sock = self.settings, self._tls, self._sock
        self._sock = None
        assert settings.user is not None and settings.password is not None and sock is not None
        api = Api(
            control=self.context.control,
            cache=self.context.cache,
            credentials=Credentials(settings.user, settings.password.get_secret_value()),
            idle_session_expiry=settings.idle_session_expiry,
            session_lifetime=settings.session_lifetime,
            access_log_format=AccessLogFormat(settings.access_log_format),
            logger=self.logger,
            metrics_token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
        )
        self.api = api
        config = uvicorn.Config(
            api.app,
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
            headers=RESPONSE_HEADERS,
            proxy_headers=True,
            forwarded_allow_ips=settings.trusted_proxies,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
            http="h11",
            timeout_keep_alive=settings.keep_alive_timeout,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        )
        config.load()
        config.ssl = tls
        self.port = sock.getsockname()[1]
        limits = ConnectionLimits(settings.header_timeout, settings.body_timeout, settings.max_connections)
        server = _Server(config, limits)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="api-server")
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait([task, listening], return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if not server.started:
            sock.close()
            error = task.exception() if not task.cancelled() else None
            raise MoonshipError(f"the API server did not start: {error!r}")
        self._server, self._task = server, task
        task.add_done_callback(self._server_ended)
        scheme = "https" if tls else "http"
        self.logger.info("API listening on %s://%s:%d", scheme, settings.host, self.port)
        if tls is None:
            self.logger.warning(
                "API without TLS (no ssl_cert/ssl_key): the session cookie needs HTTPS, only bearer tokens "
                "work; put a TLS-terminating proxy in front"
            )

    async def stop(self) -> None:
        if self._sock is not None:  # prepared by preflight(), never started
            self._sock.close()
            self._sock = None
        if self.api is not None:
            self.api.closing.set()  # the dashboard's event streams end
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        self.logger.info("API stopped")

    def _server_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("the API server failed: %r", task.exception())

    def _tls_context(self) -> ssl.SSLContext | None:
        """TLS 1.2 or newer with the system's default ciphers, or None without ssl_cert/ssl_key."""
        cert, key = self.settings.ssl_cert, self.settings.ssl_key
        if cert is None or key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key)
        except OSError as exc:  # ssl.SSLError included
            reason = exc.strerror or exc
            raise ConfigError(
                f"moonship.api.ssl_cert/ssl_key: cannot load {cert} and {key}: {reason}"
            ) from None
        return context

    def _listen(self) -> socket.socket:
        return bind_listener(self.settings.host, self.settings.port, what="the API", backlog=2048)
