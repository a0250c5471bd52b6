"""The toolkit exchange plugins assemble their clients from: websocket (ReconnectingWebSocket, SilenceWatch,
default_transport: picows or websockets behind transport's Transport), session (VenueSession), settings
(VenueSettings), ratelimit (RateLimits, RateTable, Pool, Ban, parse_retry_after), servertime (ServerClock),
errors (ErrorTable, ErrorRule). Plugins import them from `moonship_core`; docs/architecture.md ("The venue
toolkit") gives the signatures and config keys."""
