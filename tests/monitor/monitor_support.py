"""Monitor test helpers: a loopback SMTP server (STARTTLS + AUTH), a webhook server, cache setup."""

from __future__ import annotations

import json
import ssl
import threading
import time
import weakref
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import moonship_monitor.plugin
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from moonship_monitor.service import MonitorService
from moonship_monitor.settings import MonitorSettings

from moonship_core import ControlPlane, MemoryBus, MemoryCache, SharedCache, Stores, utc_now
from moonship_core.config import parse_config
from moonship_core.contracts.service import ServiceContext
from moonship_core.control import ENGINES_KEY, heartbeat_key, strategies_key
from moonship_core.plugins import Plugins
from moonship_core.testing import free_port, until

SMTP_USER = "alerts@example.com"
SMTP_PASSWORD = "smtp-pa55word"




class SmtpServer:
    """aiosmtpd on 127.0.0.1 that requires STARTTLS and then AUTH; keeps the messages it accepts."""

    def __init__(self, tls: ssl.SSLContext, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[Message] = []
        self.logins: list[tuple[str, str]] = []
        self.tls_sessions = 0
        self.running = False
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, tls_context=tls, require_starttls=True,
            authenticator=self._authenticate, auth_require_tls=True,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = (data.login.decode(), data.password.decode())
        self.logins.append(login)
        if session.ssl is not None:
            self.tls_sessions += 1
        return AuthResult(success=login == (SMTP_USER, SMTP_PASSWORD))

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> SmtpServer:
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False


class WebhookServer:
    """A local HTTP server: answers each POST with the next status in `statuses` (then 200), after `delay`
    seconds for the first `slow` requests; records every request's headers and JSON body."""

    def __init__(self, statuses: tuple[int, ...] = (), delay: float = 0.0, slow: int = 0) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[dict[str, str], Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append((dict(self.headers), json.loads(body)))
                if len(server.requests) <= slow:
                    time.sleep(delay)
                status = server.statuses.pop(0) if server.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook?token=s3cret-token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def strategy_info(name: str = "s1", engine: str = "main", **fields: Any) -> dict[str, Any]:
    """A StrategyInfo as the engine stores it (JSON values)."""
    info: dict[str, Any] = {
        "name": name, "engine": engine, "active": True, "start_time": "2026-01-01T10:00:00+00:00",
        "update_time": utc_now().isoformat(), "stop_reason": None,
        "config": {"algo": "spread_quoter", "auto_start": True, "markets": ["btc"], "api_secret": "hunter2"},
        "position": "0", "last_trade_profit": None, "total_profit": "0",
    }
    info.update(fields)
    return info


async def publish(cache: SharedCache, *infos: dict[str, Any]) -> None:
    """Write StrategyInfos (and their engines' registration and heartbeat) as a running engine does."""
    for info in infos:
        engine = info["engine"]
        await cache.hset(ENGINES_KEY, {engine: {"instance": "test", "started": utc_now()}})
        await cache.set(heartbeat_key(engine), "test")
        await cache.hset(strategies_key(engine), {info["name"]: info})


def monitor_plugins(*extra: object) -> Plugins:
    """The built-in plugin, this monitor plugin and `extra` plugin objects (no other installed plugin)."""
    plugins = Plugins.load(entry_points=False)
    plugins.register(moonship_monitor.plugin, "monitor", "moonship-monitor")
    for index, plugin in enumerate(extra):
        plugins.register(plugin, f"extra{index}")
    return plugins


def make_monitor(
    section: dict[str, Any], cache: SharedCache | None = None, plugins: Plugins | None = None,
    *, raw: bool = False,
) -> MonitorService:
    """A MonitorService over `cache` (default: a new memory cache); `raw` passes the section unvalidated.
    It counts its polls, so tests can wait for polls rather than for time (see `polls`)."""
    cache = cache or MemoryCache()
    bus = MemoryBus()
    settings = section if raw else MonitorSettings.model_validate(section)
    context = ServiceContext(
        config=parse_config({"moonship": {}}), settings=settings, sections={"monitor": settings},
        registry=plugins or monitor_plugins(), stores=Stores(cache, bus), control=ControlPlane(cache, bus),
    )
    service = MonitorService(context)
    poll = service._poll
    _poll_counts[service] = 0

    async def counted() -> None:
        try:
            await poll()
        finally:
            _poll_counts[service] += 1

    service._poll = counted  # type: ignore[method-assign]
    return service


_poll_counts: weakref.WeakKeyDictionary[MonitorService, int] = weakref.WeakKeyDictionary()


async def polls(service: MonitorService, count: int = 3) -> None:
    """Wait until `service` has polled `count` more times."""
    target = _poll_counts[service] + count
    await until(lambda: _poll_counts[service] >= target)


def email_section(port: int) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1", "smtp_port": port, "username": SMTP_USER, "password": SMTP_PASSWORD,
        "from": "moonship@example.com", "to": ["ops@example.com", "cto@example.com"],
    }
