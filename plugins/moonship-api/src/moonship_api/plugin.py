"""The `moonship` entry point of moonship-api: provides the `api` service."""

from __future__ import annotations

from moonship_core import Service, hookimpl

from .service import ApiService


@hookimpl
def moonship_services() -> dict[str, type[Service]]:
    return {"api": ApiService}
