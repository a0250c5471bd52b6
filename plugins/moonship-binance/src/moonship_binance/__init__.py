"""Moonship market client for Binance spot: `moonship_binance.client.BinanceClient` (registered as `binance`).

Nothing is imported here, so loading the plugin stays cheap until a market uses the client.
"""
