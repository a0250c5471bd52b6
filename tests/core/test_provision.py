"""tests/support/provision.py: the PATH, then the cache, then Debian's packages unpacked without root, under a
lock."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from support import provision
from support.provision import ProvisionError, ensure

from moonship_core.testing import free_port

TESTS = Path(__file__).resolve().parents[1]


def executable(path: Path, text: str = "#!/bin/sh\necho fake\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_the_path_comes_first(tmp_path: Path) -> None:
    program = executable(tmp_path / "bin" / "redis-server")
    cache = tmp_path / "cache"
    assert ensure("redis-server", cache=cache, search_path=str(program.parent), apt_install=False) == program
    assert not cache.exists()


def test_the_cache_comes_next(tmp_path: Path) -> None:
    wrapper = executable(tmp_path / "bin" / "redis-server", "#!/bin/sh\n# cached\n")
    assert ensure("redis-server", cache=tmp_path, search_path="", apt_install=False) == wrapper
    assert wrapper.read_text() == "#!/bin/sh\n# cached\n"


def test_a_session_waits_for_the_one_provisioning_and_takes_what_it_made(tmp_path: Path) -> None:
    results: list[Path] = []
    with open(tmp_path / ".redis-server.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(
            target=lambda: results.append(
                ensure("redis-server", cache=tmp_path, search_path="", apt_install=False)
            )
        )
        waiter.start()
        time.sleep(0.6)
        assert waiter.is_alive() and results == []
        wrapper = executable(tmp_path / "bin" / "redis-server", "#!/bin/sh\n# made by the other session\n")
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(10)
    assert results == [wrapper]
    assert wrapper.read_text() == "#!/bin/sh\n# made by the other session\n"


def test_what_was_tried_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(provision.TOOLS, "nonesuch", provision.Tool("moonship-nonesuch", "usr/bin/nonesuch"))
    with pytest.raises(ProvisionError) as raised:
        ensure("nonesuch", cache=tmp_path, search_path="", apt_install=False)
    message = str(raised.value)
    assert message.startswith("could not provision: nonesuch on the PATH: not found; ")
    assert f"{tmp_path}/bin/nonesuch: not there; apt-get install: not root, no password-less sudo" in message
    assert "apt-cache depends --recurse" in message and "moonship-nonesuch" in message
    assert not (tmp_path / "bin" / "nonesuch").exists()


@pytest.mark.slow
def test_debian_packages_unpacked_without_root_by_one_of_two_sessions(tmp_path: Path) -> None:
    """Two sessions at once on an empty cache: one downloads and unpacks, the other waits and takes it; the
    unpacked redis-server (with the libraries of the dependencies this machine lacks) serves."""
    script = (
        "import sys; from pathlib import Path; from support.provision import ensure; "
        "print(ensure('redis-server', cache=Path(sys.argv[1]), search_path='', apt_install=False))"
    )
    sessions = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    outputs = [session.communicate(timeout=600) for session in sessions]
    assert [session.returncode for session in sessions] == [0, 0], outputs
    wrapper = tmp_path / "bin" / "redis-server"
    assert [out.strip() for out, _ in outputs] == [str(wrapper)] * 2
    assert sum("provision: redis-server unpacked from Debian packages" in err for _, err in outputs) == 1
    assert "LD_LIBRARY_PATH" in wrapper.read_text()
    assert list(tmp_path.glob(".download-*")) == []

    port = free_port()
    server = subprocess.Popen(
        [wrapper, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    assert conn.recv(16) == b"+PONG\r\n"
                    break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the unpacked redis-server did not start"
                time.sleep(0.05)
    finally:
        server.kill()
        server.wait(10)
    assert os.access(wrapper, os.X_OK)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="drops root with setpriv")
def test_a_user_without_root_gets_the_unpacked_packages() -> None:
    """As `nobody` (no root, no sudo), with nothing on the PATH: not apt-get install but the download."""
    with tempfile.TemporaryDirectory() as home:
        os.chmod(home, 0o777)
        # a copy of the module where `nobody` can read it: a checkout may be private to its owner
        shutil.copy(TESTS / "support" / "provision.py", home)
        script = (
            "import os; from pathlib import Path; from provision import ensure; "
            "print(os.geteuid(), ensure('redis-server', search_path=''))"
        )
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", script],
            cwd=home, capture_output=True, text=True, timeout=600,
            env={"HOME": home, "PATH": os.environ["PATH"], "MOONSHIP_TEST_TOOLS": f"{home}/tools"},
        )
        assert result.returncode == 0, result.stderr
        wrapper = Path(home) / "tools" / "bin" / "redis-server"
        assert result.stdout.split() == ["65534", str(wrapper)]
        assert "provision: redis-server unpacked from Debian packages" in result.stderr
        version = subprocess.run([wrapper, "--version"], capture_output=True, text=True, timeout=30)
        assert version.stdout.startswith("Redis server v=")
