"""Moonship market client for the Luno exchange."""
