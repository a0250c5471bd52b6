"""Fixtures: a test CA, the background event loop, and running API stacks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme

from .harness import MAIN_STRATEGIES, OTHER_STRATEGIES, Certs, LoopThread, MakeStack, Stack, build_stack


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    certs = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(certs.ca))
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(certs.cert), append=True)
    issued.private_key_pem.write_to_path(str(certs.key))
    return certs


@pytest.fixture(scope="module")
def stack(loop: LoopThread, certs: Certs) -> Iterator[Stack]:
    """Engines "main" (alpha active, beta not) and "other" (gamma active), a stuck engine, the API."""
    engines = {"main": MAIN_STRATEGIES, "other": OTHER_STRATEGIES}
    running = build_stack(loop, certs, engines=engines, stuck=True)
    # all three published, with the auto-started ones already active
    running.wait_for(lambda: len(running.loop.run(running.control.strategies({"active": "true"}))) == 2)
    running.wait_for(lambda: len(running.loop.run(running.control.strategies())) == 3)
    yield running
    running.stop()


@pytest.fixture
def make_stack(loop: LoopThread, certs: Certs) -> Iterator[MakeStack]:
    """Build extra stacks (e.g. with other API settings); each is stopped after the test."""
    made: list[Stack] = []

    def make(**kwargs: Any) -> Stack:
        made.append(build_stack(loop, certs, **kwargs))
        return made[-1]

    yield make
    for stack in made:
        stack.stop()


@pytest.fixture
def token(stack: Stack) -> str:
    return stack.login()


@pytest.fixture
def client(stack: Stack, token: str) -> Iterator[httpx.Client]:
    with stack.client(token) as client:
        yield client
