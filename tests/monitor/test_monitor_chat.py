"""The webhook action's chat formats against a local HTTP server that accepts only what each service
documents: Slack's incoming webhook a JSON `text`, Discord's webhook a `content` of at most 2000 characters
(answered 204), Telegram's Bot API sendMessage on /bot<token>/sendMessage a `chat_id` and a `text`."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from monitor_support import make_monitor, monitor_plugins, publish, strategy_info, until
from moonship_monitor.webhook import WebhookSettings
from pydantic import ValidationError

from moonship_core import MemoryCache, SharedCache

CONDITION = "not active and start_time != null"


def accepts(service: str, path: str, body: Any) -> tuple[int, bytes]:
    """The status and body each service answers a POST with (from its documentation)."""
    if not isinstance(body, dict):
        return 400, b"invalid_payload"
    if service == "slack":
        ok = isinstance(body.get("text"), str) and body["text"] != ""
        return (200, b"ok") if ok else (400, b"no_text")
    if service == "discord":
        content = body.get("content")
        ok = isinstance(content, str) and 0 < len(content) <= 2000
        return (204, b"") if ok else (400, b'{"message": "Cannot send an empty message", "code": 50006}')
    ok = path.endswith("/sendMessage") and "chat_id" in body and isinstance(body.get("text"), str)
    return (200, b'{"ok": true, "result": {}}') if ok else (400, b'{"ok": false, "error_code": 400}')


class ChatServer:
    def __init__(self, service: str) -> None:
        self.requests: list[tuple[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, body))
                status, reply = accepts(service, self.path, body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def cache() -> SharedCache:
    return MemoryCache()


PATHS = {
    "slack": "/services/T000/B000/XXXX",
    "discord": "/api/webhooks/1/tok",
    "telegram": "/bot123:ABC/sendMessage",
}


def section(hook: dict[str, Any]) -> dict[str, Any]:
    alerts = {"stopped": {"condition": CONDITION, "actions": ["webhook"]}}
    return {"poll_interval": 0.05, "alerts": alerts, "webhook": hook}


@pytest.mark.anyio
@pytest.mark.parametrize("service", ["slack", "discord", "telegram"])
async def test_each_chat_service_accepts_the_body_it_gets(
    service: str, cache: SharedCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    server = ChatServer(service)
    hook: dict[str, Any] = {"url": server.base + PATHS[service], "format": service, "timeout": 2}
    if service == "telegram":
        hook["chat_id"] = "-100123"
    await publish(cache, strategy_info("s1", active=False, position="0.5", total_profit="-60.5"))
    service_ = make_monitor(section(hook), cache, monitor_plugins())
    await service_.start()
    try:
        await until(lambda: "alert stopped for s1@main: webhook action done" in caplog.messages)
    finally:
        await service_.stop()
        server.close()
    assert [m for m in caplog.messages if "failed" in m] == []
    [(path, body)] = server.requests
    assert path == PATHS[service]
    text = body.get("text") or body.get("content")
    assert text.startswith(f"Moonship alert stopped: strategy s1 of engine main ({CONDITION}) at ")
    assert "position 0.5, P/L -60.5" in text
    assert set(body) == {"slack": {"text"}, "discord": {"content"}, "telegram": {"chat_id", "text"}}[service]


@pytest.mark.anyio
async def test_a_body_the_service_refuses_fails_the_action(
    cache: SharedCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moonship")
    server = ChatServer("slack")
    hook = {"url": server.base + PATHS["slack"], "timeout": 2}  # json: the alert itself, which Slack refuses
    await publish(cache, strategy_info("s1", active=False))
    service = make_monitor(section(hook), cache, monitor_plugins())
    await service.start()
    try:
        await until(lambda: any("webhook action failed" in m for m in caplog.messages))
    finally:
        await service.stop()
        server.close()
    assert any("HTTP 400" in m for m in caplog.messages)


def test_telegram_needs_its_chat() -> None:
    telegram = {"url": "https://api.telegram.org/bot1/sendMessage", "format": "telegram"}
    with pytest.raises(ValidationError, match="chat_id is needed with format telegram"):
        WebhookSettings.model_validate(telegram)
    with pytest.raises(ValidationError, match="format"):
        WebhookSettings.model_validate({"url": "https://example.org/", "format": "teams"})
