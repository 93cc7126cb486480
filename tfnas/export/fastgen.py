"""Fast `.tflite` generation for latency datasets: convert pieces once, stitch per arch.

TFLiteConverter takes seconds per model. A `PieceCache` converts the stem,
each (block position, op) and the head once (lazily, cached in memory and on
disk) and builds any architecture's float `.tflite` by stitching its pieces
(`tflite_bench.stitch`), in milliseconds. Weights are random: for latency only.
"""

from __future__ import annotations

import hashlib
import os

import keras
import tensorflow as tf

from tflite_bench.stitch import stitch
from tfnas.data.sources import cache_dir
from tfnas.export.tflite import convert_float
from tfnas.io import atomic_write_bytes
from tfnas.layers.from_spec import apply_graph, make_layer
from tfnas.spaces import Arch, SearchSpace, parse_arch


# Bump when the child builder's layers change, so stale cached pieces are not reused.
PIECE_FORMAT = 2


class PieceCache:
  """Per-(block, op) `.tflite` pieces of one space (at one resolution and width).

  Example:
    >>> cache = PieceCache(get_space("proxyless_mobile"))
    >>> tflite_bytes = cache.model(parse_arch(space, "all_k3_e6"))

  Args:
    space: The (sized) search space.
    directory: Folder under which pieces are kept on disk (default: the tfnas
      cache); "" keeps them in memory only. Pieces go into a subfolder keyed by
      the space (its name, resolution, width, classes: the whole spec), the
      TensorFlow version that converted them and the piece format, so one folder
      serves several spaces and a TensorFlow upgrade never reuses stale pieces.
  """

  def __init__(self, space: SearchSpace, directory: str | None = None):
    self.space = space
    key = hashlib.sha1(f"{space!r}|{tf.__version__}|{PIECE_FORMAT}".encode()).hexdigest()[:12]
    root = os.path.join(cache_dir(), "pieces") if directory is None else directory
    self.directory = os.path.join(root, f"{space.name}-{key}") if root else ""
    self._mem: dict[str, bytes] = {}
    self.conversions = 0

  def _convert(self, name: str, build) -> bytes:
    if name in self._mem:
      return self._mem[name]
    path = os.path.join(self.directory, name + ".tflite") if self.directory else None
    if path and os.path.exists(path):
      with open(path, "rb") as f:
        data = f.read()
    else:
      data = convert_float(build())
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
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(self.space.head.num_classes)(x))

  def stem_piece(self) -> bytes:
    """The stem (conv, BN, activation) as a batch-1 float `.tflite`, converted once."""
    return self._convert("stem", self._stem)

  def head_piece(self) -> bytes:
    """The head (1x1 conv, pooling, classifier) as a batch-1 float `.tflite`, converted
    once."""
    return self._convert("head", self._head)

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
    """The float `.tflite` of `arch`, stitched from cached pieces."""
    return stitch(self.pieces(arch))
