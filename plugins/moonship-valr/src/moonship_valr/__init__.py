"""Moonship market client for VALR."""

from .client import ValrClient, ValrSettings

__all__ = ["ValrClient", "ValrSettings"]
