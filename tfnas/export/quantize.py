"""Float16, int8 post-training and per-layer-recipe quantization; inspecting `.tflite` files.

- `convert(model, "float32" | "float16" | "int8", ...)` goes through the TFLite
  converter (int8: full-integer with a representative dataset, float or int8 I/O).
- `quantize_recipe(float_tflite, recipe, samples)` applies a per-layer recipe to a
  float `.tflite` with litert-quantizer (static int8 activations; int8 or int4
  weights; float32 layers left alone). Calibration ranges narrower than
  `MIN_RANGE` are widened before quantization.
- `inspect(tflite)` reads the flatbuffer: operator counts, each conv/dense layer's
  weight type, I/O tensors and the minimum runtime version the converter recorded.
"""

from __future__ import annotations

import collections
import contextlib
import io
import re
from typing import Iterable

import numpy as np
import tensorflow as tf

from tflite_bench.stitch import OP_NAMES, TENSOR_TYPES
from tfnas.errors import TfnasError
from tfnas.export.recipe import Recipe
from tfnas.export.tflite import convert_float

MIN_RANGE = 1e-3
_WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def _convert(converter) -> bytes:
  with contextlib.redirect_stdout(io.StringIO()):
    return converter.convert()


def convert(model, precision: str, representative: Iterable[np.ndarray] | None = None,
            int8_io: bool = False, int8_input: bool | None = None,
            int8_output: bool | None = None) -> bytes:
  """A `.tflite` flatbuffer of `model` at a uniform `precision`.

  Args:
    model: A float Keras model (or, for "qat", a model built with `quant=`).
    precision: "float32", "float16", "int8" (post-training; needs
      `representative`) or "qat" (int8 from the fake-quant ranges in the model).
    representative: Batches of one normalized image each, for int8 calibration.
    int8_io: int8 input and output tensors instead of float (int8 and qat only).
    int8_input, int8_output: set one side alone (None: `int8_io`), e.g. for the pieces
      `tfnas.export.fastgen` stitches.
  """
  if precision == "float32":
    return convert_float(model)
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if precision == "float16":
    converter.target_spec.supported_types = [tf.float16]
  elif precision in ("int8", "qat"):
    if precision == "int8":
      if representative is None:
        raise TfnasError("int8 post-training quantization needs representative images")
      samples = list(representative)
      # float images, or uint8 pixels for a model that normalizes inside
      converter.representative_dataset = lambda: (
          [s if s.dtype == np.uint8 else s.astype(np.float32)] for s in samples)
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io if int8_input is None else int8_input:
      converter.inference_input_type = tf.int8
    if int8_io if int8_output is None else int8_output:
      converter.inference_output_type = tf.int8
  else:
    raise TfnasError(f"unknown precision {precision!r}; expected float32, float16, int8 or qat")
  return _convert(converter)


def layer_regex(name: str) -> str:
  """Regex that finds Keras layer `name` in a TFLite tensor name (`.../b03_dw_conv_1/...`)."""
  return rf"(?:^|[/;]){re.escape(name)}(?:_\d+)?/"


def _load(data: bytes):
  from tflite_bench.stitch import load_model
  try:
    return load_model(bytes(data))
  except Exception as e:  # the flatbuffer parser raises anything on garbage
    raise TfnasError(f"not a valid .tflite flatbuffer: {type(e).__name__}: {e}") from None


def _name(b) -> str:
  return b.decode() if isinstance(b, bytes) else (b or "")


def _op_layer(g, op, layers) -> str | None:
  """The Keras layer an operator came from: looked up in its weight, then output, tensor names."""
  names = [_name(g.tensors[i].name) for i in list(op.inputs[1:2]) + list(op.outputs) if i >= 0]
  for text in names:
    for layer in layers:
      if re.search(layer_regex(layer), text):
        return layer
  return None


def inspect(data: bytes, layers: Iterable[str] = ()) -> dict:
  """What is in a `.tflite`: op counts, per-layer weight types, I/O, min runtime version.

  Args:
    data: The flatbuffer.
    layers: Keras layer names to look for (conv/dense); their weight tensor types
      are returned under "layers" ({name: "float32" | "float16" | "int8" | "int4"}).
  """
  model = _load(data)
  ops, types = OP_NAMES, TENSOR_TYPES
  g = model.subgraphs[0]
  counts = collections.Counter()
  per_layer = {}
  layers = sorted(layers, key=len, reverse=True)  # longest first: b01_dw_conv before b01_dw
  for op in g.operators:
    code = model.operatorCodes[op.opcodeIndex]
    kind = ops.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
    counts[kind] += 1
    if kind in _WEIGHT_OPS and len(op.inputs) > 1:
      layer = _op_layer(g, op, layers)
      if layer:
        per_layer[layer] = types[g.tensors[op.inputs[1]].type]
  # A float16 model stores weights as float16 and DEQUANTIZEs them: report the storage type.
  for op in g.operators:
    code = model.operatorCodes[op.opcodeIndex]
    if ops.get(max(code.builtinCode, code.deprecatedBuiltinCode)) == "DEQUANTIZE":
      src, dst = g.tensors[op.inputs[0]], _name(g.tensors[op.outputs[0]].name)
      for layer in layers:
        if layer in per_layer and re.search(layer_regex(layer), dst):
          per_layer[layer] = types[src.type]
  metadata = {}
  for m in model.metadata or []:
    buf = model.buffers[m.buffer].data
    if buf is not None:
      metadata[_name(m.name)] = bytes(np.asarray(buf, np.uint8)).rstrip(b"\0").decode(
          errors="replace")

  def io_info(idx):
    t = g.tensors[idx]
    q = t.quantization
    scale = [float(s) for s in q.scale] if q is not None and q.scale is not None else []
    zero = [int(z) for z in q.zeroPoint] if q is not None and q.zeroPoint is not None else []
    return {"name": _name(t.name), "shape": [int(s) for s in t.shape], "dtype": types[t.type],
            "scale": scale[0] if len(scale) == 1 else None,
            "zero_point": zero[0] if len(zero) == 1 else None}

  return {"ops": dict(sorted(counts.items())), "num_ops": sum(counts.values()),
          "layers": per_layer, "inputs": [io_info(i) for i in g.inputs],
          "outputs": [io_info(i) for i in g.outputs],
          "min_runtime_version": metadata.get("min_runtime_version")}


def _tag_layers(data: bytes, layers: Iterable[str]) -> bytes:
  """Prefixes `<layer>/` to weight-op output tensor names that do not already name their layer.

  litert-quantizer matches recipe regexes against output tensor names; the
  converter names the last op's output after the signature (e.g. the classifier's
  `StatefulPartitionedCall:0`), which would hide that layer from the recipe.
  """
  from tflite_bench.stitch import pack_model
  model = _load(data)
  ops = OP_NAMES
  g = model.subgraphs[0]
  layers = sorted(layers, key=len, reverse=True)
  changed = False
  for op in g.operators:
    code = model.operatorCodes[op.opcodeIndex]
    if ops.get(max(code.builtinCode, code.deprecatedBuiltinCode)) not in _WEIGHT_OPS:
      continue
    layer = _op_layer(g, op, layers)
    out = g.tensors[op.outputs[0]]
    if layer and not re.search(layer_regex(layer), _name(out.name)):
      out.name = f"{layer}/{_name(out.name)}".encode()
      changed = True
  return pack_model(model) if changed else data


def _min_max_update(qsv: dict, new: dict) -> dict:
  """Calibration statistics over all samples: elementwise min of mins, max of maxes."""
  if not qsv:
    return new
  return {**qsv, "min": np.minimum(qsv["min"], new["min"]),
          "max": np.maximum(qsv["max"], new["max"])}


class RecipeQuantizer:
  """Applies per-layer recipes to one float `.tflite` with litert-quantizer.

  Calibration runs once (on the float model, with every tensor observed), so many
  recipes can be tried on the same calibration (the precision search does).

  Args:
    float_tflite: The float32 flatbuffer (from `convert_float`).
    layers: The quantizable layer names (e.g. `Recipe.check`'s result).
    samples: Normalized images, one per array (1, H, W, C), for calibration.
  """

  def __init__(self, float_tflite: bytes, layers: Iterable[str], samples: Iterable[np.ndarray]):
    from ai_edge_litert.interpreter import Interpreter
    from litert_quantizer import calibrator
    self.data = _tag_layers(float_tflite, layers)
    interp = Interpreter(model_content=self.data)
    sig = next(iter(interp.get_signature_list()))
    input_name = interp.get_signature_list()[sig]["inputs"][0]
    batches = [{input_name: s.astype(np.float32)} for s in samples]
    # Ranges are the min and max over all samples, as the TFLite converter's int8
    # calibration takes them. litert-quantizer's default update is a moving average
    # (0.95) of per-sample ranges, which came out narrower than the data (input
    # [-1.91, 2.26] vs [-2.12, 2.64]) and cost a uniform-int8 recipe 3.9 points
    # against the converter's int8 on the same model and images.
    calib = calibrator.Calibrator(self.data, num_threads=1, qsv_update_func=_min_max_update)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
      calib.calibrate({sig: batches}, self._manager(Recipe.uniform("int8"), {}))
    self.calibration = calib.get_model_qsvs()
    for qsv in self.calibration.values():
      lo, hi = np.asarray(qsv["min"], np.float32), np.asarray(qsv["max"], np.float32)
      mid, narrow = (lo + hi) / 2, (hi - lo) < MIN_RANGE
      qsv["min"] = np.where(narrow, mid - MIN_RANGE / 2, lo).astype(np.float32)
      qsv["max"] = np.where(narrow, mid + MIN_RANGE / 2, hi).astype(np.float32)

  @staticmethod
  def _manager(recipe: Recipe, layers: dict[str, str]):
    from litert_quantizer import qtyping, recipe_manager
    manager = recipe_manager.RecipeManager()
    op_all = qtyping.TFLOperationName.ALL_SUPPORTED
    if recipe.default == "int8":
      manager.add_static_config(".*", op_all, 8, 8)
    else:
      manager.add_quantization_config(".*", op_all, None, "no_quantize")
    for name, precision in sorted(layers.items()):
      if precision == recipe.default:
        continue
      if precision == "float32":
        manager.add_quantization_config(layer_regex(name), op_all, None, "no_quantize")
      else:
        manager.add_static_config(layer_regex(name), op_all, 8, 8 if precision == "int8" else 4)
    return manager

  def quantize(self, recipe: Recipe, layers: dict[str, str], strict: bool = True):
    """The file for `recipe`; `layers` = {name: precision} (`Recipe.check`'s result).

    The result is read back: with `strict`, a layer that did not get its precision
    is an error; otherwise returns (file, {name: precision actually in the file}).
    """
    from litert_quantizer import quantizer
    q = quantizer.Quantizer(self.data, self._manager(recipe, layers).get_quantization_recipe())
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
      result = q.quantize(self.calibration, enable_progress_bar=False,
                          enable_progress_report=False)
    out = bytes(result.quantized_model)
    got = inspect(out, layers)["layers"]
    if not strict:
      return out, got
    wrong = {n: (p, got.get(n)) for n, p in layers.items() if got.get(n) != p}
    if wrong:  # never hand back a file that is not what the recipe says
      detail = ", ".join(f"{n}: asked {p}, got {g}" for n, (p, g) in sorted(wrong.items())[:5])
      hint = (" (litert-quantizer keeps an int4 conv at int8 when its output feeds a float "
              "layer directly)" if any(p == "int4" for p, _ in wrong.values()) else "")
      raise TfnasError(f"the quantized file does not follow the recipe: {detail}{hint}")
    return out


def quantize_recipe(float_tflite: bytes, recipe: Recipe, layers: dict[str, str],
                    samples: Iterable[np.ndarray]) -> bytes:
  """Applies a per-layer `recipe` to a float `.tflite` with litert-quantizer.

  Args:
    float_tflite: The float32 flatbuffer (from `convert_float`).
    recipe: The recipe, already checked against the model (`Recipe.check`).
    layers: {layer name: precision} for every quantizable layer (`Recipe.check`'s result).
    samples: Normalized images, one per array (1, H, W, C), for calibration.

  Returns:
    The quantized flatbuffer (int8 input and output when the first/last layers are int8).
  """
  return RecipeQuantizer(float_tflite, layers, samples).quantize(recipe, layers)
