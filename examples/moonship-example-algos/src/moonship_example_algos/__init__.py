"""An example third-party algo distribution: the `price_alert` algo, packaged the way a private algo
plugin is."""
