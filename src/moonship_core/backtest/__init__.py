"""`moonship backtest`: a config's strategies over a recording (sim/replay.py) on the paper fill model, and
the report: run.py (the run), report.py (figures, CSV, JSON), html.py (the page)."""
