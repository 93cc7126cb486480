"""Data: folder and TFDS sources, train/validation/test pipelines."""

from tfnas.data.pipeline import Data, Preprocess, load

__all__ = ["Data", "Preprocess", "load"]
