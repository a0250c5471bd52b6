"""Moonship market client for VALR: `moonship_valr.client.ValrClient` (registered as `valr`).

Nothing is imported here, so loading the plugin stays cheap until a market uses the client.
"""
