"""Fixtures for the monitor tests."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import trustme
from monitor_support import SmtpServer
from support.servers import redis

from moonship_core import MemoryBus, MemoryCache, MessageBus, SharedCache
from moonship_core.stores.redis import RedisBus, RedisCache


@pytest.fixture
def server_tls(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A self-signed CA and a server certificate for 127.0.0.1; the CA is the only one clients trust."""
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def smtp_factory(server_tls: ssl.SSLContext) -> Iterator[Callable[..., SmtpServer]]:
    """Makes SMTP servers (not started); stops the started ones at the end."""
    servers: list[SmtpServer] = []

    def make(port: int | None = None) -> SmtpServer:
        servers.append(SmtpServer(server_tls, port))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def smtp(smtp_factory: Callable[..., SmtpServer]) -> SmtpServer:
    """A running SMTP server."""
    return smtp_factory().start()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    server = redis()
    server.start()
    yield server.url
    server.kill()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[tuple[SharedCache, MessageBus]]:
    """The shared cache and message bus that engines and monitors share: in memory, then on Redis."""
    if request.param == "memory":
        yield MemoryCache(), MemoryBus()
        return
    url = request.getfixturevalue("redis_url")
    cache, bus = RedisCache(url), RedisBus(url)
    await cache.redis.flushdb()
    yield cache, bus
    await bus.close()
    await cache.close()


@pytest.fixture
def cache(backend: tuple[SharedCache, MessageBus]) -> SharedCache:
    return backend[0]
