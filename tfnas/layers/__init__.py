"""tfnas.layers."""
