"""The service: settings, start-up refusals, TLS, plain HTTP, plugin registration, signals, access log."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
import threading
import time
from typing import Any

import pytest
from moonship_api.accesslog import DEFAULT_FORMAT, AccessLogFormat, AccessRecord
from moonship_api.service import ApiService
from moonship_api.settings import ApiSettings

from moonship_core import ConfigError, MemoryBus, MemoryCache, MoonshipError, Stores
from moonship_core.config import parse_config, validate_sections
from moonship_core.contracts.service import ServiceContext
from moonship_core.control import ControlPlane
from moonship_core.plugins import Plugins

from .harness import PASSWORD, PASSWORD_HASH, USER, Certs, MakeStack, api_settings


def service(settings: Any) -> ApiService:
    cache, bus = MemoryCache(), MemoryBus()
    return ApiService(ServiceContext(
        config=parse_config({"moonship": {}}), settings=settings, sections={}, registry=Plugins(),
        stores=Stores(cache, bus), control=ControlPlane(cache, bus),
    ))


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        ({}, "moonship.api.user and moonship.api.password not set"),
        ({"user": USER}, "moonship.api.password not set"),
        ({"password": PASSWORD_HASH}, "moonship.api.user not set"),
    ],
)
def test_refuses_to_start_without_user_or_password(settings: dict[str, Any], missing: str) -> None:
    api = service({"host": "127.0.0.1", "port": 0, **settings})
    with pytest.raises(ConfigError, match=missing):
        asyncio.run(api.start())
    assert api.port is None


def test_an_absent_api_section_still_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match=r"moonship\.api\.user and moonship\.api\.password not set"):
        asyncio.run(service({}).start())


def test_settings_defaults_are_the_seeds() -> None:
    settings = ApiSettings()
    assert settings.port == 8080
    assert settings.idle_session_expiry == 0
    assert settings.access_log_format == '%a %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"'
    assert settings.user is None and settings.password is None
    assert settings.ssl_cert is None and settings.ssl_key is None


def test_port_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8443")
    config = parse_config({"moonship": {"api": {"port": "$PORT", "user": USER, "password": PASSWORD_HASH}}})
    sections = validate_sections(config, {"api": ApiSettings})
    assert isinstance(sections["api"], ApiSettings) and sections["api"].port == 8443
    assert ApiSettings(port=" 9000 ").port == 9000  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"port": "http"}, r"moonship\.api\.port: "),
        ({"port": 70000}, r"moonship\.api\.port: "),
        ({"port": -1}, r"moonship\.api\.port: "),
        ({"password": "plain text"}, r"moonship\.api\.password: must be a bcrypt hash"),
        ({"ssl_cert": "cert.pem"}, r"moonship\.api: ssl_cert and ssl_key must be set together"),
        ({"ssl_key": "key.pem"}, r"moonship\.api: ssl_cert and ssl_key must be set together"),
        ({"idle_session_expiry": -1}, r"moonship\.api\.idle_session_expiry: "),
        ({"access_log_format": "%a %Z"}, r"unknown access log token '%Z'"),
        ({"access_log_format": "%{Referer"}, r"unknown access log token '%\{'"),
        ({"access_log_format": "100%"}, r"unknown access log token '%'"),
        ({"usr": "x"}, r"moonship\.api\.usr: unknown property"),
        ({"trusted_proxies": ["::1", 7]}, r"moonship\.api\.trusted_proxies\[1\]: input should be a valid"),
    ],
)
def test_bad_settings_name_the_property(settings: dict[str, Any], problem: str) -> None:
    config = parse_config({"moonship": {"api": settings}})
    with pytest.raises(ConfigError, match=problem) as err:
        validate_sections(config, {"api": ApiSettings})
    assert "$2b$" not in str(err.value)
    with pytest.raises(ConfigError) as unchecked:  # a raw section given to the service: the core's wording
        service(settings)
    assert str(unchecked.value) == str(err.value)


def test_the_password_hash_is_never_shown() -> None:
    settings = ApiSettings(user=USER, password=PASSWORD_HASH)  # type: ignore[arg-type]
    assert PASSWORD_HASH not in repr(settings) and PASSWORD_HASH not in str(settings)


def test_the_plugin_provides_the_api_service() -> None:
    plugins = Plugins.load()
    assert plugins.resolve("services", "api") is ApiService
    assert plugins.section_models()["api"] is ApiSettings
    [info] = [p for p in plugins.describe() if p.distribution == "moonship-api"]
    assert info.provides == {"services": ["api"]}


def test_unreadable_tls_files_refuse_to_start(certs: Certs, tmp_path: Any) -> None:
    api = service(api_settings(certs, ssl_cert=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError, match=r"moonship\.api\.ssl_cert/ssl_key: cannot load"):
        asyncio.run(api.start())
    api = service(api_settings(certs, ssl_cert=str(certs.ca), ssl_key=str(certs.key)))  # key does not match
    with pytest.raises(ConfigError, match="cannot load"):
        asyncio.run(api.start())


def test_a_port_in_use_refuses_to_start(certs: Certs) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        api = service(api_settings(certs, port=port))
        with pytest.raises(MoonshipError, match=f"the API cannot listen on 127.0.0.1:{port}: "):
            asyncio.run(api.start())


def test_tls_1_2_or_newer(make_stack: MakeStack, certs: Certs) -> None:
    stack = make_stack()
    old = certs.client_context()
    with pytest.warns(DeprecationWarning):
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", stack.api.port)) as raw:
        old.wrap_socket(raw, server_hostname="127.0.0.1")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = certs.client_context()
        context.minimum_version = context.maximum_version = version
        with (
            socket.create_connection(("127.0.0.1", stack.api.port)) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == version.name.replace("v1_", "v1.")


def test_plain_http_works_with_bearer_tokens(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "moonship")
    stack = make_stack(settings=api_settings(None))
    assert stack.url.startswith("http://")
    token = stack.login()
    with stack.client(token) as client:
        assert client.get("/strategies").json() == {"strategies": []}
    assert "API without TLS" in caplog.text


def test_start_in_the_main_thread_leaves_signal_handling_to_the_launcher(certs: Certs) -> None:
    async def main() -> None:
        before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        api = service(api_settings(certs))
        await api.start()
        try:
            assert {sig: signal.getsignal(sig) for sig in before} == before
        finally:
            await api.stop()
            await api.stop()  # idempotent

    asyncio.run(main())


def test_stop_waits_for_requests_in_flight(make_stack: MakeStack) -> None:
    stack = make_stack(engines={"main": {}}, stuck=True)
    token = stack.login()
    replies: list[int] = []
    with stack.client(token) as client:
        request = threading.Thread(
            target=lambda: replies.append(client.post("/strategies/stuck/x/stop").status_code)
        )
        request.start()
        time.sleep(0.3)
        stack.loop.run(stack.api.stop())
        request.join()
    assert replies == [504]


def record(**changes: Any) -> AccessRecord:
    values: dict[str, Any] = {
        "remote": "203.0.113.1",
        "started": 0.0,
        "request_line": "GET /strategies?active=true HTTP/1.1",
        "status": 200,
        "size": 1234,
        "duration": 1.5,
        "request_headers": {"referer": "https://example.test/", "user-agent": "curl/8", "authorization": "x"},
        "response_headers": {"content-type": "application/json", "set-cookie": "y"},
    }
    return AccessRecord(**{**values, **changes})


def test_access_log_format_tokens() -> None:
    line = AccessLogFormat(DEFAULT_FORMAT).format(record())
    assert line.startswith("203.0.113.1 [")
    assert line.endswith('] "GET /strategies?active=true HTTP/1.1" 200 1234 "https://example.test/" "curl/8"')
    assert AccessLogFormat("%T %Tf %D %%").format(record()) == "2 1.500000 1500000 %"
    assert AccessLogFormat("%P").format(record()).startswith("<")
    assert AccessLogFormat("%{Content-Type}o %{X-Missing}i").format(record()) == "application/json -"
    secrets = AccessLogFormat("%{Authorization}i %{Cookie}i %{Set-Cookie}o").format(record())
    assert secrets == "- - -"


def test_access_log_lines_and_no_secrets_in_any_log(
    make_stack: MakeStack, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fmt = '%a "%r" %s %b %{Authorization}i %{User-Agent}i %Tf'
    stack = make_stack(settings=api_settings(certs, access_log_format=fmt))
    token = stack.login()
    with stack.client(token, headers={"User-Agent": "tester/1"}) as client:
        client.get("/strategies", params={"engine": "main"})
        client.post("/login", json={"user": USER, "password": "wrong password"})
    time.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if r.name == "moonship.api.access"]
    assert any(line.startswith('127.0.0.1 "POST /login HTTP/1.1" 200 ') for line in lines)
    listed = '"GET /strategies?engine=main HTTP/1.1" 200 '
    assert any(listed in line and " - tester/1 " in line for line in lines)
    assert any('"POST /login HTTP/1.1" 401 ' in line for line in lines)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("moonship", "uvicorn")))
    for secret in (token, PASSWORD, "wrong password", PASSWORD_HASH):
        assert secret not in ours
    assert "failed login from 127.0.0.1" in caplog.text
