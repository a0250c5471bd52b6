"""What the venue simulators share: fault switches, the connection writer, uvicorn hosting, a price-time
book."""
