"""The `moonship` entry point of moonship-api: provides the `api` service (imported when it runs)."""

from __future__ import annotations

from moonship_core import hookimpl


@hookimpl
def moonship_services() -> dict[str, str]:
    return {"api": "moonship_api.service:ApiService"}
