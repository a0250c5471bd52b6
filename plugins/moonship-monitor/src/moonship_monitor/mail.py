"""The `email` action: SMTP with STARTTLS and login, without blocking the event loop (aiosmtplib)."""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Annotated, Any

import aiosmtplib
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from .alert import Alert, AlertAction

#: seconds for connecting and for each SMTP command
SMTP_TIMEOUT = 30.0
SENDER_NAME = "Moonship Monitor"


def as_list(value: Any) -> Any:
    """One string as a one-item list (properties that take "one or a list")."""
    return [value] if isinstance(value, str) else value


class EmailSettings(BaseModel):
    """`moonship.monitor.email`."""

    model_config = ConfigDict(extra="forbid")

    #: SMTP server (always STARTTLS, then login)
    smtp_host: str = Field(min_length=1)
    #: its port
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    #: SMTP login
    username: str
    #: SMTP password
    password: SecretStr
    #: the From address
    sender: str = Field(alias="from", min_length=3)
    #: recipients: one address or a list
    to: Annotated[list[str], BeforeValidator(as_list), Field(min_length=1)]


def compose(alert: Alert, settings: EmailSettings) -> EmailMessage:
    """The alert email: which alert, engine and strategy, the condition, and the strategy's state."""
    message = EmailMessage()
    message["Subject"] = f"Moonship alert: {alert.alert} - {alert.strategy}@{alert.engine}"
    message["From"] = formataddr((SENDER_NAME, settings.sender))
    message["To"] = ", ".join(settings.to)
    message["Date"] = format_datetime(alert.time)
    message["Message-ID"] = make_msgid("moonship", domain=settings.sender.rpartition("@")[2] or "moonship")
    message.set_content(
        f"Alert:     {alert.alert}\n"
        f"Condition: {alert.condition}\n"
        f"Engine:    {alert.engine}\n"
        f"Strategy:  {alert.strategy}\n"
        f"Time:      {alert.time.isoformat()}\n\n"
        f"Strategy state:\n{json.dumps(alert.state, indent=2, sort_keys=True)}\n"
    )
    return message


class EmailAction(AlertAction):
    """Mails each alert to `to` through `smtp_host`:`smtp_port` (STARTTLS, then login)."""

    settings_model = EmailSettings
    settings: EmailSettings

    async def send(self, alert: Alert) -> None:
        s = self.settings
        await aiosmtplib.send(
            compose(alert, s),
            hostname=s.smtp_host,
            port=s.smtp_port,
            start_tls=True,
            username=s.username,
            password=s.password.get_secret_value(),
            timeout=SMTP_TIMEOUT,
        )
