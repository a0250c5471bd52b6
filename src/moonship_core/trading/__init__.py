"""The trading kernel, one for live, paper and backtest: markets, strategies, positions, the engine that
composes them, its state publisher and command handler. Internal: plugins import from `moonship_core`."""
