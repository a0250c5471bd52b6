"""Moonship REST API service."""
