"""Property-based fuzzing with schemathesis against the served /openapi.json: no 5xx, no response that breaks
the document (status, content type, headers, body schema), with valid and invalid input."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from moonship_api.accesslog import AccessLogFormat
from moonship_api.app import Api
from moonship_api.auth import Credentials
from moonship_api.openapi import OPENAPI
from schemathesis import BaseSchema
from schemathesis.checks import (
    CheckFunction,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
)
from starlette.routing import Route

from .harness import MAIN_STRATEGIES, PASSWORD_HASH, USER, Certs, LoopThread, Stack, build_stack

#: the fuzzer's login attempts come from 127.0.0.1; the tests log in from elsewhere (via the trusted proxy)
OWN_ADDRESS = {"X-Forwarded-For": "192.0.2.1"}
LOGGER = logging.getLogger("moonship.api")


@pytest.fixture(scope="module")
def fuzzed(loop: LoopThread, certs: Certs) -> Iterator[Stack]:
    stack = build_stack(loop, certs, engines={"main": MAIN_STRATEGIES}, stuck=True, timeout=0.2)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def token(fuzzed: Stack) -> str:
    return fuzzed.login(**OWN_ADDRESS)


@pytest.fixture(scope="module")
def api_schema(fuzzed: Stack, certs: Certs) -> BaseSchema:
    with fuzzed.client() as client:
        document: dict[str, Any] = client.get("/openapi.json").json()
    # steer most path parameters to the running engine and its strategies, so commands do real work
    names = document["components"]["parameters"]
    names["engine"]["schema"] = {"anyOf": [{"enum": ["main", "stuck"]}, {"type": "string"}]}
    names["strategy"]["schema"] = {"anyOf": [{"enum": ["alpha", "beta", "fz"]}, names["strategy"]["schema"]]}
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=fuzzed.url, tls_verify=str(certs.ca))
    return schema


@pytest.fixture(scope="module")
def session(certs: Certs) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.verify = str(certs.ca)
        yield session


CONFIG_OPERATIONS = {"POST /strategies/{engine}/{strategy}", "PATCH /strategies/{engine}/{strategy}"}

schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_document(
    case: schemathesis.Case[Any], fuzzed: Stack, token: str, session: requests.Session
) -> None:
    if case.path == "/events":  # an endless stream (tests/api/test_observability.py reads it)
        pytest.skip("an endless event stream")
    if case.path == "/logout":  # logging out must not end the session the other cases use
        token = fuzzed.login(**OWN_ADDRESS)
    excluded: list[CheckFunction] = [not_a_server_error]
    if case.operation.label == "GET /strategies":  # every query is valid there: nothing to reject
        excluded.append(negative_data_rejection)
    if case.operation.label in CONFIG_OPERATIONS:
        # a schema-valid config may still name an algo or market the engine lacks (400, naming the field)
        excluded.append(positive_data_acceptance)
    response = case.call_and_validate(
        session=session, headers={"Authorization": f"Bearer {token}"}, excluded_checks=excluded
    )
    # 504 is the documented reply of the engine that never answers; any other 5xx is a failure
    stuck = (case.path_parameters or {}).get("engine") == "stuck"
    assert response.status_code < 500 or (response.status_code == 504 and stuck)


def test_the_document_is_valid_and_describes_every_route(fuzzed: Stack) -> None:
    with fuzzed.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    documented = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    schemathesis.openapi.from_dict(OPENAPI).validate()
    credentials = Credentials(USER, PASSWORD_HASH)
    app = Api(fuzzed.control, fuzzed.cache, credentials, 0, AccessLogFormat(""), LOGGER).app
    served = {
        (method, route.path) for route in app.routes if isinstance(route, Route)
        for method in route.methods or () if method != "HEAD"
    }
    assert documented == served
    # GET /logout is gone (issue 15 item 6); GET /orders and /fills (issue 12); +3 for the trading state (14);
    # +5 for observability (17): /metrics, /health, /alerts, /events, /
    assert len(served) == 20
