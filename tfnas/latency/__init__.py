"""Latency models: lookup tables, fitted additive models, MACs/params; one interface."""

from tfnas.latency.loading import load
from tfnas.latency.models import LatencyModel, from_json, spec_model

__all__ = ["LatencyModel", "from_json", "load", "spec_model"]
