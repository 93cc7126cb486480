"""tfnas.latency."""
