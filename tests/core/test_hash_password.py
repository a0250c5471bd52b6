"""`moonship hash-password`: the bcrypt hash for moonship.api.password, from stdin or asked twice."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from moonship_core import cli

bcrypt = pytest.importorskip("bcrypt")


def test_from_stdin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "moonship_core", "hash-password"], input="correct horse\n",
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert hashed.startswith("$2b$") and bcrypt.checkpw(b"correct horse", hashed.encode())


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_asked_twice_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["pw1", "pw1", "pw1", "other"])
    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt="": next(answers))
    assert cli.main(["hash-password"]) == 0
    assert bcrypt.checkpw(b"pw1", capsys.readouterr().out.strip().encode())
    assert cli.main(["hash-password"]) == 1
    assert "the two passwords differ" in capsys.readouterr().err


def test_empty_and_too_long(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert cli.main(["hash-password"]) == 1
    assert "empty password" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("x" * 73 + "\n"))
    assert cli.main(["hash-password"]) == 1
    assert "longer than bcrypt's 72 bytes" in capsys.readouterr().err


def test_without_bcrypt_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # `import bcrypt` raises ImportError
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert cli.main(["hash-password"]) == 2
    assert "hash-password needs bcrypt: pip install moonship-api" in capsys.readouterr().err
