"""The `webhook` action: HTTP POST of the alert as JSON (httpx), with a timeout."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .alert import ActionError, Alert, AlertAction


class WebhookSettings(BaseModel):
    """`moonship.monitor.webhook`. The URL and header values are secrets (URLs often embed a token)."""

    model_config = ConfigDict(extra="forbid")

    #: http(s) URL the alert is POSTed to as JSON
    url: SecretStr
    #: seconds to wait for the connection and for the response
    timeout: float = Field(default=10.0, gt=0)
    #: extra request headers (e.g. Authorization)
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class WebhookAction(AlertAction):
    """POSTs `Alert.to_dict()` as JSON to `url`; any status but 2xx is a failure (retried by the monitor)."""

    settings_model = WebhookSettings
    settings: WebhookSettings

    def __init__(self, settings: WebhookSettings) -> None:
        super().__init__(settings)
        self._client = httpx.AsyncClient(
            timeout=settings.timeout,
            headers={name: value.get_secret_value() for name, value in settings.headers.items()},
        )

    async def send(self, alert: Alert) -> None:
        try:
            response = await self._client.post(self.settings.url.get_secret_value(), json=alert.to_dict())
        except httpx.TimeoutException:
            raise ActionError(f"no response within {self.settings.timeout:g}s") from None
        except httpx.NetworkError as exc:  # socket-level: the message names no URL
            raise ActionError(f"{type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:  # some of these messages hold the URL: name the kind only
            raise ActionError(f"request failed ({type(exc).__name__})") from None
        if not response.is_success:
            raise ActionError(f"HTTP {response.status_code} {response.reason_phrase}".rstrip())

    async def close(self) -> None:
        await self._client.aclose()
