"""What plugins implement: MarketClient (client.py), TradingAlgo (algo.py), Service (service.py), and the
stores they share (stores.py). Internal modules: plugins import these names from `moonship_core`."""
