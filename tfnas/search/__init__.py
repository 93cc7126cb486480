"""tfnas.search."""
