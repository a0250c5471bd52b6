"""The suite's servers and processes: the test kit's (moonship_core.testing) with this checkout's facts (the
redis-server program (provisioned), `moonship` run from the repository's root)."""

from __future__ import annotations

from pathlib import Path

from moonship_core.testing import MoonshipProcess, RedisServer

from .provision import ensure

ROOT = Path(__file__).resolve().parents[2]


def redis() -> RedisServer:
    """A throwaway redis-server (not started yet), provisioned when missing."""
    return RedisServer(ensure("redis-server"))


def moonship(*args: str, env: dict[str, str] | None = None) -> MoonshipProcess:
    """`python -m moonship ARGS` from the repository's root."""
    return MoonshipProcess(*args, cwd=ROOT, env=env)
