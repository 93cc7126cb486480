"""Per-layer precision recipes: which conv/dense layer is float32, int8 or int4.

A recipe is JSON:

    {"default": "int8",
     "layers": {"b03_project_conv": "int4", "b01_expand_conv": "float32"}}

`int8` means int8 weights (per channel) and int8 activations; `int4` int8
activations with int4 weights; `float32` leaves the layer float. Layer names are
the child model's (`<block>_<role>`, `stem_stem_conv`, `head_head_conv`, the pooled conv
`head_mix_conv` where the space has one, `classifier`); `python -m tfnas.bin.spaces` and
`quantizable_layers` list them. A squeeze-and-excitation layer (`<block>_se`) is not
addressable: it follows the recipe's default in post-training quantization.
Int4 is refused on depthwise convolutions: TFLite has no int4 depthwise kernel.
"""

from __future__ import annotations

import dataclasses
import json

import keras

from tfnas.errors import TfnasError

PRECISIONS = {"float32": None, "int8": 8, "int4": 4}


def quantizable_layers(model: keras.Model) -> dict[str, str]:
  """{layer name: "conv" | "dwconv" | "dense"} for the layers a recipe can address."""
  from tfnas.layers.quant import QuantConv, QuantDense
  out = {}
  for layer in model.layers:
    if isinstance(layer, keras.layers.DepthwiseConv2D) or (
        isinstance(layer, QuantConv) and layer.depthwise):
      out[layer.name] = "dwconv"
    elif isinstance(layer, (keras.layers.Conv2D, QuantConv)):
      out[layer.name] = "conv"
    elif isinstance(layer, (keras.layers.Dense, QuantDense)):
      out[layer.name] = "dense"
  return out


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A validated precision per quantizable layer (`bits(name)` -> 8, 4 or None)."""
  default: str = "int8"
  layers: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    for name, p in ((None, self.default),) + tuple(self.layers):
      if p not in PRECISIONS:
        where = "default" if name is None else f"layer {name!r}"
        raise TfnasError(f"recipe: {where} has precision {p!r}; expected one of "
                         f"{sorted(PRECISIONS)}")
    if self.default == "int4":
      raise TfnasError("recipe: default 'int4' would put int4 on depthwise convolutions, which "
                       "TFLite cannot run; set default int8 or float32 and name int4 layers")

  @classmethod
  def uniform(cls, precision: str) -> "Recipe":
    """Every layer at `precision` (one of `PRECISIONS`)."""
    return cls(default=precision)

  @classmethod
  def from_json(cls, obj) -> "Recipe":
    """From {"default": PRECISION, "layers": {NAME: PRECISION}}; raises TfnasError for
    any other shape or an unknown precision."""
    if not isinstance(obj, dict) or set(obj) - {"default", "layers"}:
      raise TfnasError('recipe: expected {"default": PRECISION, "layers": {NAME: PRECISION}}, '
                       f"got {json.dumps(obj)[:200]}")
    layers = obj.get("layers", {})
    if not isinstance(layers, dict):
      raise TfnasError(f"recipe: 'layers' must map layer names to precisions, got {layers!r}")
    return cls(default=obj.get("default", "int8"), layers=tuple(sorted(layers.items())))

  @classmethod
  def load(cls, path: str) -> "Recipe":
    """`from_json` of the JSON file at `path` (a one-line TfnasError if unreadable)."""
    from tfnas.io import read_json
    return cls.from_json(read_json(path, "recipe file"))

  def to_json(self) -> dict:
    """The form `from_json` reads."""
    return {"default": self.default, "layers": dict(self.layers)}

  def precision(self, name: str) -> str:
    """The precision of layer `name`: its own, else the default."""
    return dict(self.layers).get(name, self.default)

  def bits(self, name: str) -> int | None:
    """Weight bits of layer `name` (8 or 4), None for a float layer."""
    return PRECISIONS[self.precision(name)]

  def check(self, model: keras.Model) -> dict[str, str]:
    """Validates names and int4 placement against `model`; returns {layer: precision}."""
    kinds = quantizable_layers(model)
    for name, p in self.layers:
      if name not in kinds:
        close = sorted(kinds, key=lambda k: _distance(k, name))[:3]
        raise TfnasError(f"recipe names layer {name!r}, which the model does not have; "
                         f"closest: {close} (all {len(kinds)} are listed by quantizable_layers)")
      if p == "int4" and kinds[name] == "dwconv":
        raise TfnasError(f"recipe asks int4 for depthwise conv {name!r}; TFLite has no int4 "
                         "depthwise kernel (int4 is for conv and dense layers)")
    return {name: self.precision(name) for name in kinds}

  @property
  def is_uniform(self) -> bool:
    """Whether no layer differs from the default."""
    return not self.layers


def _distance(a: str, b: str) -> int:
  """Levenshtein distance (for 'did you mean' hints)."""
  prev = list(range(len(b) + 1))
  for i, ca in enumerate(a, 1):
    cur = [i]
    for j, cb in enumerate(b, 1):
      cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
    prev = cur
  return prev[-1]

