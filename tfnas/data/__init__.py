"""Data: folder and TFDS sources, train/validation/test pipelines."""

from tfnas.data.pipeline import Data, Preprocess, load, load_from_config, single_images

__all__ = ["Data", "Preprocess", "load", "load_from_config", "single_images"]
