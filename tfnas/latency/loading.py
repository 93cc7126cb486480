"""`load`: a cost model (latency, MACs or params) from the name a config or flag gives."""

from __future__ import annotations

import os

from tfnas.errors import TfnasError
from tfnas.io import read_json
from tfnas.latency.lut import import_proxyless_yaml
from tfnas.latency.models import CostModel, from_json, spec_model
from tfnas.spaces import SearchSpace, get_space


def load(spec: str, space: SearchSpace | None = None) -> CostModel:
  """A cost model from "macs", "params", "lut:FILE.yaml" or a latency model JSON path.

  Args:
    spec: "macs" (MMACs from the spec), "params" (M params),
      "lut:FILE.yaml" (a ProxylessNAS-format per-op table, ms) or the path of a
      `latency_model.json` written by `tfnas.bin.latency_fit`.
    space: The (sized) search space; "lut:" without one means `proxyless_mobile`.

  Raises:
    TfnasError: "macs"/"params" without a space, or a path that does not exist (and the
      errors of the table or JSON readers).
  """
  if spec == "flops":
    raise TfnasError("cost model 'flops' is ambiguous (a multiply-accumulate is two FLOPs "
                     "by some counts, one by others): use 'macs' (the spec's MMACs)")
  if spec in ("macs", "params"):
    if space is None:
      raise TfnasError(f"cost model {spec!r} needs a space")
    return spec_model(space, spec)
  if spec.startswith("lut:"):
    if space is None:
      space = get_space("proxyless_mobile")
    return import_proxyless_yaml(spec[4:], space)
  if not os.path.exists(spec):
    raise TfnasError(f"latency model {spec!r} is neither 'macs', 'params', 'lut:FILE.yaml' "
                     f"nor an existing latency_model.json")
  return from_json(read_json(spec, "latency model file"), space)
