"""Moonship REST API service (`moonship -a`)."""

from __future__ import annotations

from .service import ApiService
from .settings import ApiSettings

__all__ = ["ApiService", "ApiSettings"]
