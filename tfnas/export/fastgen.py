"""Fast `.tflite` generation for latency datasets: convert pieces once, stitch per arch.

TFLiteConverter takes seconds per model (10-20 s for an int8 one, calibration
included). A `PieceCache` converts the stem, each (block position, op) and the
head once (lazily, cached in memory and on disk) and builds any architecture's
`.tflite` by stitching its pieces (`tflite_bench.stitch`), in milliseconds.
Weights are random (BN statistics too, so no two constants are equal, as in a
trained model): for latency only.

Precisions (`tfnas.latency.PRECISIONS`), each the form `tfnas.export` ships:
- "float32": `convert_float`.
- "float16": float16 weights, DEQUANTIZEd to float32 once (the converter's
  `supported_types=[tf.float16]`).
- "int8": full-integer post-training quantization (`TFLITE_BUILTINS_INT8`,
  per-channel weights) with float input and output, the export's default: the stem
  piece takes float and gives int8, the blocks take and give int8, the head takes int8
  and gives float, so the stitched model has the converter's one QUANTIZE at the start
  and one DEQUANTIZE at the end. Calibration uses random normal inputs: the scales
  differ from a trained model's, the operators, shapes, types and quantization axes
  do not (tests/test_bench.py checks them op for op against the converter).
"""

from __future__ import annotations

import hashlib
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from tflite_bench.stitch import stitch
from tfnas.data.sources import cache_dir
from tfnas.errors import TfnasError
from tfnas.export import quantize
from tfnas.io import atomic_write_bytes
from tfnas.latency import PRECISIONS
from tfnas.layers.from_spec import SqueezeExcite, apply_graph, apply_pool, make_layer
from tfnas.spaces import Arch, SearchSpace, parse_arch


# Bump when the child builder's layers or the pieces' conversion change, so stale cached
# pieces are not reused (3: random BN statistics, precisions; 4: hard swish's order, random
# squeeze-and-excitation biases).
PIECE_FORMAT = 4
CALIBRATION_SAMPLES = 4  # random inputs calibrating an int8 piece


def randomize_batchnorm(model: keras.Model, seed: int = 0) -> keras.Model:
  """Sets every BatchNormalization layer's gamma, beta, moving mean and variance of
  `model`, and every squeeze-and-excitation layer's biases, to random values (in place;
  returns it).

  A fresh layer has gamma 1, beta 0, mean 0, variance 1 (SE biases 0), so every folded
  bias is zero and the converter stores equal constants once; a trained model has none
  equal. With random values a latency model's constants are laid out as a trained one's."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      for w in layer.weights:  # gamma, beta, moving_mean, moving_variance
        positive = w.name in ("gamma", "moving_variance")
        w.assign((rng.uniform(0.5, 1.5, w.shape) if positive
                  else rng.normal(0.0, 0.1, w.shape)).astype(np.float32))
    elif isinstance(layer, SqueezeExcite):
      for w in (layer.reduce_bias, layer.expand_bias):
        w.assign(rng.normal(0.0, 0.1, w.shape).astype(np.float32))
  return model


def convert_piece(model: keras.Model, precision: str, int8_input: bool,
                  int8_output: bool, seed: int = 0) -> bytes:
  """`model` (a piece, or a whole child) as a `.tflite` at `precision` (see the module
  docstring). int8: calibrated on `CALIBRATION_SAMPLES` random normal inputs;
  `int8_input`/`int8_output` choose int8 rather than float input/output tensors
  (ignored for float32 and float16)."""
  if precision != "int8":
    return quantize.convert(model, precision)
  rng = np.random.default_rng(seed)
  shape = (1, *model.inputs[0].shape[1:])
  samples = [rng.normal(size=shape).astype(np.float32) for _ in range(CALIBRATION_SAMPLES)]
  with warnings.catch_warnings():  # int8 input: the converter asks for input statistics
    warnings.filterwarnings("ignore", "Statistics for quantized inputs")
    return quantize.convert(model, "int8", samples, int8_input=int8_input,
                            int8_output=int8_output)


class PieceCache:
  """Per-(block, op) `.tflite` pieces of one space (at one resolution and width) at one
  precision.

  Example:
    >>> cache = PieceCache(get_space("proxyless_mobile"))
    >>> tflite_bytes = cache.model(parse_arch(space, "all_k3_e6"))

  Args:
    space: The (sized) search space.
    directory: Folder under which pieces are kept on disk (default: the tfnas
      cache); "" keeps them in memory only. Pieces go into a subfolder keyed by
      the space (its name, resolution, width, classes: the whole spec), the
      TensorFlow version that converted them, the precision and the piece format,
      so one folder serves several spaces and precisions and a TensorFlow upgrade never
      reuses stale pieces.
    precision: "float32", "float16" or "int8" (`tfnas.latency.PRECISIONS`).

  Raises:
    TfnasError: an unknown precision.
  """

  def __init__(self, space: SearchSpace, directory: str | None = None,
               precision: str = "float32"):
    if precision not in PRECISIONS:
      raise TfnasError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    self.space, self.precision = space, precision
    key = hashlib.sha1(f"{space!r}|{tf.__version__}|{PIECE_FORMAT}".encode()).hexdigest()[:12]
    root = os.path.join(cache_dir(), "pieces") if directory is None else directory
    self.directory = os.path.join(root, f"{space.name}-{precision}-{key}") if root else ""
    self._mem: dict[str, bytes] = {}
    self.conversions = 0

  def _convert(self, name: str, build, int8_input: bool = True,
               int8_output: bool = True) -> bytes:
    if name in self._mem:
      return self._mem[name]
    path = os.path.join(self.directory, name + ".tflite") if self.directory else None
    if path and os.path.exists(path):
      with open(path, "rb") as f:
        data = f.read()
    else:
      data = convert_piece(randomize_batchnorm(build()), self.precision, int8_input,
                           int8_output)
      self.conversions += 1
      if path:
        atomic_write_bytes(path, data)
    self._mem[name] = data
    return data

  def _stem(self):
    inputs = keras.Input(self.space.input_shape, batch_size=1)
    x = inputs
    for spec in self.space.stem_layers:
      x = make_layer(spec, "stem", self.space.activation)(x)
    return keras.Model(inputs, x)

  def _block(self, i: int, graph):
    block = self.space.blocks[i]
    inputs = keras.Input(block.in_shape, batch_size=1)
    return keras.Model(inputs, apply_graph(inputs, graph, block.name, self.space.activation))

  def _head(self):
    inputs = keras.Input(self.space.blocks[-1].out_shape, batch_size=1)
    x = inputs
    for spec in self.space.head_layers:
      x = make_layer(spec, "head", self.space.activation)(x)
    x = apply_pool(x, self.space.pooled_layers, self.space.activation)
    return keras.Model(inputs, keras.layers.Dense(self.space.head.num_classes)(x))

  def stem_piece(self) -> bytes:
    """The stem (conv, BN, activation) as a batch-1 `.tflite` (float input), converted
    once."""
    return self._convert("stem", self._stem, int8_input=False)

  def head_piece(self) -> bytes:
    """The head (1x1 conv, pooling, the pooled 1x1 conv where the space has one,
    classifier) as a batch-1 `.tflite` (float output), converted once."""
    return self._convert("head", self._head, int8_output=False)

  def block_piece(self, i: int, op_index: int, scale: float | None = None) -> bytes | None:
    """Block `i` running op `op_index` (at mid-channel `scale`); None for the identity."""
    block = self.space.blocks[i]
    op = block.ops[op_index]
    graph = block.graph(op, self.space.activation, 1.0 if scale is None else scale)
    if not graph.main and graph.residual:
      return None  # identity: no operators at all
    tag = op.name if scale is None or not block.mid_scales else f"{op.name}@{scale:g}"
    return self._convert(f"{block.name}-{tag}", lambda: self._block(i, graph))

  def pieces(self, arch: Arch) -> list[bytes]:
    """The `.tflite` pieces of `arch` in order (stem, every block, fixed ones included,
    that is not an identity, head), each converted once and cached; `stitch` joins
    them into one model."""
    arch = parse_arch(self.space, arch)
    choice = self.space.choice_blocks
    scales = arch.mid_scales(self.space) if arch.channels is not None else None
    out = [self.stem_piece()]
    for i, block in enumerate(self.space.blocks):
      if block in choice:
        j = choice.index(block)
        piece = self.block_piece(i, arch.ops[j], scales[j] if scales else None)
      else:
        piece = self.block_piece(i, 0)
      if piece is not None:
        out.append(piece)
    out.append(self.head_piece())
    return out

  def model(self, arch: Arch) -> bytes:
    """The `.tflite` of `arch` at the cache's precision, stitched from cached pieces."""
    return stitch(self.pieces(arch))
