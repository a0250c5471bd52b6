"""The `webhook` action: HTTP POST of the alert (httpx), with a timeout: the alert as JSON, or the message
body a chat service's webhook takes (Slack, Discord, Telegram)."""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

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
    #: the body: `json` (the alert), `slack` / `discord` (an incoming webhook's message), `telegram` (the Bot
    #: API's sendMessage: url `https://api.telegram.org/bot<TOKEN>/sendMessage` with `chat_id`)
    format: Literal["json", "slack", "discord", "telegram"] = "json"
    #: the Telegram chat to post to (format `telegram` only)
    chat_id: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _chat_for_telegram(self) -> WebhookSettings:
        if (self.format == "telegram") != (self.chat_id is not None):
            raise ValueError("chat_id is needed with format telegram, and only with it")
        return self


#: the longest message each chat service takes (Discord: 2000 characters, Telegram: 4096)
MAX_TEXT = {"discord": 2000, "telegram": 4096}


def message(alert: Alert) -> str:
    """One line for a chat: the alert, the strategy, its condition and its position and P/L."""
    state = alert.state
    return (
        f"Moonship alert {alert.alert}: strategy {alert.strategy} of engine {alert.engine} "
        f"({alert.condition}) at {alert.time.isoformat(timespec='seconds')}; "
        f"active {state.get('active')}, position {state.get('position')}, P/L {state.get('total_profit')}"
    )


def body(alert: Alert, settings: WebhookSettings) -> dict[str, Any]:
    """What `settings.format` sends for `alert`."""
    if settings.format == "json":
        return alert.to_dict()
    text = message(alert)[: MAX_TEXT.get(settings.format)]
    if settings.format == "slack":
        return {"text": text}
    if settings.format == "discord":
        return {"content": text}
    return {"chat_id": settings.chat_id, "text": text}


class WebhookAction(AlertAction):
    """POSTs the alert to `url` in `format`; any status but 2xx is a failure (retried by the monitor)."""

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
            url = self.settings.url.get_secret_value()
            response = await self._client.post(url, json=body(alert, self.settings))
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
