"""Latency models: lookup tables, fitted additive models, MACs/params; one interface."""

from tfnas.latency.loading import load
from tfnas.latency.models import (PRECISIONS, UNITS, CostModel, from_json, spec_model,
                                  with_unit)

__all__ = ["PRECISIONS", "UNITS", "CostModel", "from_json", "load", "spec_model", "with_unit"]
