"""Fail before trading (issue 15 item 8): the real `moonship` command, in a subprocess, finds a taken API
port, an unusable certificate and an unreachable or unauthenticated Redis before any strategy starts, and says
so in one line on stderr with exit 2 (config) or 1 (environment), never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.provision import ensure
from support.servers import ROOT

from moonship_core.testing import free_port

from .harness import PASSWORD_HASH, USER, Certs

ENGINE = """
moonship:
  engine: {{name: e1}}{redis}
  markets:
    btc: {{client: paper, real_client: sim, symbol: BTCUSDT, balances: {{BTC: 1, USDT: 100000}}}}
  strategies:
    eager: {{algo: log_market_info, markets: [btc], auto_start: true}}
"""


def config(tmp_path: Path, *, redis: str | None = None, api: dict[str, object] | None = None) -> Path:
    text = ENGINE.format(redis=f'\n  redis: {{url: "{redis}"}}' if redis else "")
    if api is not None:
        text += "  api:\n" + "".join(f"    {key}: {value}\n" for key, value in api.items())
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def api_section(certs: Certs, port: int, **overrides: object) -> dict[str, object]:
    section: dict[str, object] = {
        "host": "127.0.0.1", "port": port, "user": USER, "password": f'"{PASSWORD_HASH}"',
        "ssl_cert": str(certs.cert), "ssl_key": str(certs.key),
    }
    section.update(overrides)
    return section


def moonship(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moonship", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, line: str) -> None:
    """Exit `code`, exactly one line on stderr starting with `line`, no traceback, no strategy started."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(line), result.stderr
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything
    assert "started (" not in everything and "engine e1 started" not in everything  # no strategy, no engine


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", [["run", "-e", "-a"], ["config", "check"]])
def test_api_port_in_use(tmp_path: Path, certs: Certs, taken_port: int, command: list[str]) -> None:
    """Issue 15: the taken port was found after the engine had started its strategies (and `config check` said
    OK)."""
    path = config(tmp_path, api=api_section(certs, taken_port))
    result = moonship(*command, "-c", str(path))
    line = f"moonship: the API cannot listen on 127.0.0.1:{taken_port}: Address already in use"
    assert_one_line(result, 1, line)


@pytest.mark.parametrize("command", [["run", "-e", "-a"], ["config", "check"]])
@pytest.mark.parametrize("problem", ["missing", "not a certificate"])
def test_unusable_certificate_is_a_config_error(
    tmp_path: Path, certs: Certs, command: list[str], problem: str
) -> None:
    cert = tmp_path / "cert.pem"
    if problem != "missing":
        cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    path = config(tmp_path, api=api_section(certs, free_port(), ssl_cert=str(cert)))
    result = moonship(*command, "-c", str(path))
    line = f"moonship: moonship.api.ssl_cert/ssl_key: cannot load {cert} and {certs.key}: "
    assert_one_line(result, 2, line)
    if problem == "missing":
        assert result.stderr.rstrip().endswith("No such file or directory")


@pytest.mark.parametrize("command", [["run", "-e"], ["run", "-e", "-a"], ["config", "check"]])
def test_redis_on_a_closed_port(tmp_path: Path, certs: Certs, command: list[str]) -> None:
    """Issue 15: start-up against a closed Redis port printed three chained tracebacks."""
    port = free_port()
    path = config(tmp_path, redis=f"redis://:hunter2@127.0.0.1:{port}/0", api=api_section(certs, free_port()))
    result = moonship(*command, "-c", str(path))
    assert_one_line(result, 1, f"moonship: Redis at 127.0.0.1:{port} is not usable (moonship.redis.url): ")
    assert "hunter2" not in result.stderr + result.stdout


@pytest.fixture
def redis_with_password() -> Iterator[tuple[int, str]]:
    binary = ensure("redis-server")
    port, password = free_port(), "s3cret-redis"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", password],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, password
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.parametrize("command", [["run", "-e"], ["config", "check"]])
def test_redis_with_a_wrong_password(
    tmp_path: Path, redis_with_password: tuple[int, str], command: list[str]
) -> None:
    port, _ = redis_with_password
    path = config(tmp_path, redis=f"redis://:wrong-one@127.0.0.1:{port}/0")
    result = moonship(*command, "-c", str(path))
    assert_one_line(result, 1, f"moonship: Redis at 127.0.0.1:{port} is not usable (moonship.redis.url): ")
    assert "wrong-one" not in result.stderr + result.stdout


def test_config_check_passes_with_redis_up_and_the_port_free(
    tmp_path: Path, certs: Certs, redis_with_password: tuple[int, str]
) -> None:
    port, password = redis_with_password
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    path = config(tmp_path, redis=url, api=api_section(certs, free_port()))
    result = moonship("config", "check", "-c", str(path))
    assert (result.returncode, result.stdout, result.stderr) == (0, "OK: 1 markets, 1 strategies\n", "")


def test_several_problems_one_line_each(tmp_path: Path, certs: Certs, taken_port: int) -> None:
    port = free_port()
    path = config(tmp_path, redis=f"redis://127.0.0.1:{port}/0", api=api_section(certs, taken_port))
    result = moonship("run", "-e", "-a", "-c", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"moonship: Redis at 127.0.0.1:{port} is not usable (moonship.redis.url): Error 111 connecting to "
        f"127.0.0.1:{port}. Connect call failed ('127.0.0.1', {port}).",
        f"moonship: the API cannot listen on 127.0.0.1:{taken_port}: Address already in use",
    ]

