"""The reference algorithms moonship-core ships (registered by the builtin plugin, imported on use):
`log_market_info` (a market's book top, spread and last trade at INFO) and `spread_quoter` (a post-only
market maker around the mid, with position and drawdown limits)."""
