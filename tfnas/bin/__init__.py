"""tfnas.bin."""
