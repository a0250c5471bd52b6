"""Example algorithms: log_market_info and spread_quoter."""
