"""ApiControl: the ControlPlane's reads and strategy commands over a running process's REST API, for the CLI
when the config has no Redis (the engine then takes commands only inside its own process)."""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any

import httpx

from .config import MoonshipConfig
from .errors import ConfigError, ControlError

#: seconds for each request to the API
TIMEOUT = 20.0


class ApiControl:
    """Logs in as `user` and sends each call as the matching API request (bearer session)."""

    def __init__(self, base_url: str, user: str, password: str, verify: ssl.SSLContext | bool = True) -> None:
        self.base_url = base_url
        self._login = {"user": user, "password": password}
        self._client = httpx.AsyncClient(base_url=base_url, verify=verify, timeout=TIMEOUT)

    @classmethod
    def from_config(cls, config: MoonshipConfig, user: str, password: str) -> ApiControl:
        """The API that `config` serves (`moonship.api.host`/`port`; HTTPS with `ssl_cert`, which is trusted
        besides the system's CAs, so a self-signed certificate works)."""
        api = config.section("api")
        if not api:
            raise ConfigError(
                "neither moonship.redis.url nor moonship.api is set: the engine cannot be reached"
            )
        host = str(api.get("host", "127.0.0.1"))
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        port = int(str(api.get("port", 8080)).strip())
        verify: ssl.SSLContext | bool = True
        scheme = "http"
        if api.get("ssl_cert"):
            scheme = "https"
            verify = ssl.create_default_context()
            verify.load_verify_locations(str(api["ssl_cert"]))
        netloc = f"[{host}]" if ":" in host else host
        return cls(f"{scheme}://{netloc}:{port}", user, password, verify)

    async def __aenter__(self) -> ApiControl:
        reply = await self._request("POST", "/login", json=self._login)
        self._client.headers["Authorization"] = f"Bearer {reply['session_token']}"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if "Authorization" in self._client.headers:
                await self._request("POST", "/logout", json={})
        except ControlError:
            pass  # the session ends by itself
        finally:
            await self._client.aclose()

    async def engine_states(self) -> list[dict[str, Any]]:
        engines: list[dict[str, Any]] = (await self._request("GET", "/engines"))["engines"]
        return engines

    async def strategies(self) -> list[dict[str, Any]]:
        strategies: list[dict[str, Any]] = (await self._request("GET", "/strategies"))["strategies"]
        return strategies

    async def start(self, engine: str, name: str) -> Any:
        return await self._request("POST", f"/strategies/{engine}/{name}/start", json={})

    async def stop(self, engine: str, name: str) -> Any:
        return await self._request("POST", f"/strategies/{engine}/{name}/stop", json={})

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            problem = f"the API at {self.base_url} cannot be reached: {type(exc).__name__}"
            raise ControlError(problem, 503) from None
        try:
            body = reply.json()
        except ValueError:
            body = {}
        if not reply.is_success:
            message = body.get("error") if isinstance(body, dict) else None
            raise ControlError(f"API: {message or reply.reason_phrase}", reply.status_code)
        return body
