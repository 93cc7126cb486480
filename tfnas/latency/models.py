"""Latency models behind one interface: `predict(arch)` and `block_costs()`.

Every model here is additive over choice blocks: cost(arch) = constant +
sum_j cost_j(op_j). That is what the ProxylessNAS expected-latency loss needs
(E[lat] = sum_j sum_i p_ji F(o_ji) + constant is linear in the gate
probabilities), and what SPOS needs for hard constraints. Kinds:

- "lut": a lookup table of per-(block, op) latencies measured in isolation
  (micro-benchmarks), or imported from the ProxylessNAS / Once-for-All YAML.
- "fitted": least-squares fit of the per-(block, op) costs plus an overhead on
  whole-model measurements (the sampled-architecture dataset).
- "macs" / "params": the spec's multiply-accumulates or parameters (millions),
  exact for every arch including channel choices.

Models are stored as JSON (never pickle).
"""

from __future__ import annotations

import numpy as np

from tfnas.errors import TfnasError
from tfnas.io import atomic_write_json
from tfnas.spaces import Arch, SearchSpace, get_space, parse_arch
from tfnas.spaces.analysis import costs as spec_costs

FORMAT_VERSION = 1


# The unit of each quantity a cost model can predict; the unit says which it is.
UNITS = {"ms": "latency", "MMACs": "multiply-accumulates", "Mparams": "parameters"}

# The precisions of the `.tflite` a latency model can be measured on, each the form
# `tfnas.export` ships: float32; float16 weights; int8 full-integer post-training
# quantization with float input/output (`tfnas.export.fastgen`). A latency model predicts
# one of them; MACs and parameters do not depend on it.
PRECISIONS = ("float32", "float16", "int8")


def with_unit(value: float, unit: str) -> dict:
  """{"value": value, "unit": unit}: how reports write every cost (issue 20, item 3)."""
  return {"value": float(value), "unit": unit}


class CostModel:
  """Additive cost model over one search space: latency in ms (a measured or published
  per-op table, or a fit on measured archs), or the spec's MACs (MMACs) or parameters
  (Mparams). A target or a prediction is always in the model's `unit`.

  Attributes:
    space: The sized search space the costs belong to.
    kind: "lut", "fitted", "macs-scaled" (latency), "macs" or "params".
    unit: "ms", "MMACs" or "Mparams" (`UNITS`).
    constant: Cost of everything that is not a choice (stem, fixed blocks, head,
      and a fitted overhead).
    table: {block name: {op token: cost}}; op token is the op name, or
      "name@scale" on spaces with channel choices.
    meta: Free-form provenance (source file, device, fit report, ...).
    precision: For a latency model, the precision of the `.tflite` files it predicts
      ("float32", "float16" or "int8": `PRECISIONS`); None for MACs and parameters,
      which do not depend on it.

  Raises:
    TfnasError: an unknown unit, a latency model without a known precision, or a
      precision on a MACs or parameters model.
  """

  def __init__(self, space: SearchSpace, kind: str, unit: str, constant: float,
               table: dict[str, dict[str, float]], meta: dict | None = None,
               precision: str | None = None):
    if unit not in UNITS:
      raise TfnasError(f"cost model unit {unit!r} is not one of {', '.join(UNITS)}")
    if unit == "ms" and precision not in PRECISIONS:
      raise TfnasError(f"latency model precision {precision!r} is not one of "
                       f"{list(PRECISIONS)}")
    if unit != "ms" and precision is not None:
      raise TfnasError(f"a cost model in {unit} has no precision (got {precision!r})")
    self.precision = precision
    self.space, self.kind, self.unit = space, kind, unit
    self.constant = float(constant)
    self.table = table
    self.meta = meta or {}

  def _token(self, block, op_index: int, scale: float | None) -> str:
    name = block.ops[op_index].name
    return f"{name}@{scale:g}" if block.mid_scales and scale is not None else name

  def cost(self, block_index: int, op_index: int, scale: float | None = None) -> float:
    """The cost of op `op_index` in choice block `block_index` (at `scale`)."""
    block = self.space.choice_blocks[block_index]
    token = self._token(block, op_index, 1.0 if scale is None and block.mid_scales else scale)
    row = self.table.get(block.name)
    if row is None or token not in row:
      raise TfnasError(f"latency model ({self.kind}) has no entry for block {block.name} op "
                       f"{token!r} of space {self.space.name!r}")
    return row[token]

  def block_costs(self) -> list[list[float]]:
    """[choice block][op] costs (at channel scale 1.0 where there are channel choices)."""
    return [[self.cost(j, i) for i in range(len(b.ops))]
            for j, b in enumerate(self.space.choice_blocks)]

  def predict(self, arch) -> float:
    """The cost of `arch` (an `Arch`, arch string or reference name) in `unit`: the
    constant plus each choice block's entry for its op (and channel scale).

    Raises:
      TfnasError: `arch` does not parse for the space, or a block's entry is missing.
    """
    arch = parse_arch(self.space, arch)
    scales = arch.mid_scales(self.space) if arch.channels is not None else [None] * len(arch.ops)
    return self.constant + sum(self.cost(j, i, s) for j, (i, s) in
                               enumerate(zip(arch.ops, scales)))

  def predict_many(self, archs) -> np.ndarray:
    """(N,) float64: `predict` of each of `archs`, in `unit`."""
    return np.array([self.predict(a) for a in archs])

  @property
  def is_latency(self) -> bool:
    """True when the model predicts latency (ms), not MACs or parameters."""
    return self.unit == "ms"

  def predicted(self, arch) -> dict:
    """`predict(arch)` with its unit: {"value": float, "unit": "ms" | "MMACs" | "Mparams"},
    and for a latency model the precision it predicts ({"precision": "int8", ...})."""
    out = with_unit(self.predict(arch), self.unit)
    if self.precision:
      out["precision"] = self.precision
    return out

  def check_precision(self, precision: str, what: str, fix: str | None = None) -> None:
    """Refuses a latency model of another precision than the `.tflite` it is to predict
    (`what` names that file or setting, `fix` what to do instead of the default advice,
    for the message). MACs and parameters models pass for every precision.

    Raises:
      TfnasError: one line naming both precisions and how to get a matching model.
    """
    if self.is_latency and self.precision != precision:
      fix = fix or (f"measure one at {precision} (python -m tfnas.bin.latency_fit "
                    f"--measure_lut --precision={precision} ..., or profile "
                    f"--precision={precision} and fit) or set the precision to "
                    f"{self.precision}")
      raise TfnasError(
          f"the latency model ({self.kind}, {self.meta.get('source', 'measured')}) predicts "
          f"{self.precision} files, but {what} is {precision}: {fix}")

  def to_json(self) -> dict:
    """The latency_model.json object: format, kind, unit, precision (latency models;
    None otherwise), the space and size it is for (name, resolution, classes, width,
    block channels), constant, table, meta."""
    return {"format": FORMAT_VERSION, "kind": self.kind, "unit": self.unit,
            "precision": self.precision,
            "space": self.space.name, "resolution": self.space.input_shape[0],
            "num_classes": self.space.head.num_classes, "width": self.meta.get("width", 1.0),
            "channels": [b.out_shape[2] for b in self.space.blocks],
            "constant": self.constant, "table": self.table, "meta": self.meta}

  def save(self, path: str) -> None:
    """Writes `to_json` to `path` atomically."""
    atomic_write_json(path, self.to_json())


def from_json(obj: dict, space: SearchSpace | None = None) -> CostModel:
  """The model `to_json` wrote, for `space` (None: the space it names, at its size).

  A latency model written before models carried a precision (no "precision" field) is
  float32: every latency model was then measured on float32 files.

  Raises:
    TfnasError: another format version, or a model for another space, resolution or
      width than `space`.
  """
  if obj.get("format") != FORMAT_VERSION:
    raise TfnasError(f"latency model format {obj.get('format')!r} is not {FORMAT_VERSION}")
  if space is None:
    space = get_space(obj["space"], obj["resolution"], obj.get("width", 1.0),
                      num_classes=obj.get("num_classes"))
  elif space.name != obj["space"]:
    raise TfnasError(f"latency model is for space {obj['space']!r}, not {space.name!r}")
  elif space.input_shape[0] != obj["resolution"]:
    raise TfnasError(f"latency model is for resolution {obj['resolution']}, not "
                     f"{space.input_shape[0]}")
  channels = [b.out_shape[2] for b in space.blocks]
  if "channels" in obj and obj["channels"] != channels:
    raise TfnasError(f"latency model was measured at width {obj.get('width', 1.0)} (block "
                     f"channels {obj['channels'][:4]}...), not at this space's width (block "
                     f"channels {channels[:4]}...)")
  precision = obj.get("precision", "float32" if obj["unit"] == "ms" else None)
  return CostModel(space, obj["kind"], obj["unit"], obj["constant"], obj["table"],
                   obj.get("meta"), precision)


def spec_model(space: SearchSpace, kind: str = "macs") -> CostModel:
  """MACs (millions) or params (millions) from the spec, as a cost model."""
  if kind not in ("macs", "params"):
    raise TfnasError(f"spec cost kind {kind!r} must be 'macs' or 'params'")
  field = kind
  table: dict[str, dict[str, float]] = {}
  base_arch = Arch.create(space, [0] * len(space.choice_blocks))
  base = {c.name: getattr(c, field) for c in spec_costs(space, base_arch)}
  choice_names = {b.name for b in space.choice_blocks}
  constant = sum(v for k, v in base.items() if k not in choice_names) / 1e6
  for j, block in enumerate(space.choice_blocks):
    row = {}
    scales = block.mid_scales or (None,)
    for i, op in enumerate(block.ops):
      for s in scales:
        graph = block.graph(op, space.activation, s if s is not None else 1.0)
        value = sum(getattr(l, field) for l in graph.layers()) / 1e6
        row[f"{op.name}@{s:g}" if s is not None else op.name] = value
    table[block.name] = row
  return CostModel(space, kind, "MMACs" if kind == "macs" else "Mparams", constant, table,
                      {"source": "spec"})
