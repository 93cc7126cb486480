"""tfnas: hardware-aware neural architecture search for mobile, in Keras."""

__version__ = "0.1.0"
