"""Stock Keras layers from the spec: one `LayerSpec` (`make_layer`) or one block's `OpGraph`
(`apply_graph`), float or quantization-aware, and the two weightless channel-shuffle
layers of ShuffleNet-style units (`ChannelSplit`, `ChannelShuffle`).

The child builder (`tfnas.models.child`), the ProxylessNAS `MixedOp` candidates and fast
piece generation all build their layers here, so a layer is named
``<prefix>_<role>`` (e.g. ``b03_dw_conv``) wherever it is built.
"""

from __future__ import annotations

import keras

from tfnas.layers.quant import FakeQuant, QuantConv
from tfnas.spaces.spec import LayerSpec, OpGraph


@keras.saving.register_keras_serializable(package="tfnas")
class ChannelSplit(keras.layers.Layer):
  """Splits channels into even and odd halves (ShuffleNetV2 shuffle + split).

  Equivalent to the SPOS code's `channel_shuffle` followed by taking both
  halves: output 0 holds channels 0, 2, 4, ..., output 1 holds 1, 3, 5, ...

  Example:
    >>> even, odd = ChannelSplit(name="b01_split")(keras.Input((8, 8, 16)))
  """

  def call(self, x):
    """(N, H, W, C) -> two (N, H, W, C/2) tensors: the even, then the odd channels."""
    # Gather evens then odds (reshape + transpose) and split in two contiguous halves:
    # RESHAPE/TRANSPOSE/SPLIT all run inside XNNPACK, a strided slice does not.
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    pairs = keras.ops.reshape(x, (-1, h, w, c // 2, 2))
    grouped = keras.ops.reshape(keras.ops.transpose(pairs, (0, 1, 2, 4, 3)), (-1, h, w, c))
    even, odd = keras.ops.split(grouped, 2, axis=-1)
    return even, odd

  def compute_output_shape(self, input_shape):
    half = tuple(input_shape[:-1]) + (input_shape[-1] // 2,)
    return half, half


@keras.saving.register_keras_serializable(package="tfnas")
class ChannelShuffle(keras.layers.Layer):
  """ShuffleNet channel shuffle: (h, w, g*n) -> view (h, w, g, n) -> (h, w, n, g) -> flat.

  Keras' `Reshape` layer keeps the batch dimension dynamic, which TFLite turns
  into SHAPE/STRIDED_SLICE/PACK ops around every reshape; a fixed -1 batch here
  converts to plain RESHAPE + TRANSPOSE.

  Example:
    >>> y = ChannelShuffle(groups=2, name="b01_shuffle")(keras.Input((8, 8, 16)))
  """

  def __init__(self, groups: int, **kwargs):
    super().__init__(**kwargs)
    self.groups = groups

  def call(self, x):
    """(N, H, W, C) -> (N, H, W, C), channels interleaved across the `groups`."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    y = keras.ops.reshape(x, (-1, h, w, self.groups, c // self.groups))
    y = keras.ops.transpose(y, (0, 1, 2, 4, 3))
    return keras.ops.reshape(y, (-1, h, w, c))

  def get_config(self):
    return {**super().get_config(), "groups": self.groups}


def make_layer(spec: LayerSpec, prefix: str, activation: str, bn_momentum: float = 0.9,
               bn_class=None):
  """The stock Keras layer (or small chain) for one `LayerSpec`; a callable.

  `bn_class` replaces `keras.layers.BatchNormalization` (same constructor and weights):
  supernets pass `tfnas.layers.batchnorm.FusedBatchNorm`; children keep the stock layer."""
  name = f"{prefix}_{spec.role}"
  if spec.type == "conv":
    return keras.layers.Conv2D(spec.out_shape[2], spec.kernel, spec.stride, padding="same",
                               groups=spec.groups, use_bias=False, name=name,
                               kernel_initializer="he_normal")
  if spec.type == "dwconv":
    return keras.layers.DepthwiseConv2D(spec.kernel, spec.stride, padding="same",
                                        use_bias=False, name=name,
                                        depthwise_initializer="he_normal")
  if spec.type == "bn":
    return (bn_class or keras.layers.BatchNormalization)(momentum=bn_momentum, epsilon=1e-3,
                                                         name=name)
  if spec.type == "act":
    return keras.layers.ReLU(max_value=6.0 if activation == "relu6" else None, name=name)
  if spec.type == "shuffle":
    return ChannelShuffle(spec.groups, name=name)
  raise AssertionError(spec.type)


def run_quant(t, layers, prefix: str, activation: str, quant):
  """QAT version of a layer chain: conv (+ BN folded) (+ activation) fused in `QuantConv`."""
  i = 0
  while i < len(layers):
    spec = layers[i]
    if spec.type in ("conv", "dwconv"):
      bn = layers[i + 1] if i + 1 < len(layers) and layers[i + 1].type == "bn" else None
      j = i + (2 if bn else 1)
      act = layers[j] if j < len(layers) and layers[j].type == "act" else None
      name = f"{prefix}_{spec.role}"
      bits = quant.bits(name)
      t = QuantConv(spec.out_shape[2], spec.kernel, spec.stride, depthwise=spec.type == "dwconv",
                    groups=spec.groups, activation=activation if act else None,
                    weight_bits=bits, name=name,
                    folded_from=(name, f"{prefix}_{bn.role}" if bn else ""))(t)
      if bits or quant.default != "float32":  # a float layer's output still feeds int8 layers
        t = FakeQuant(name=f"{name}_fq")(t)
      i = j + (1 if act else 0)
    else:
      t = make_layer(spec, prefix, activation)(t)
      if spec.type == "act" and quant.default != "float32":
        t = FakeQuant(name=f"{prefix}_{spec.role}_fq")(t)
      i += 1
  return t


def apply_graph(x, graph: OpGraph, prefix: str, activation: str, bn_momentum: float = 0.9,
                quant=None, bn_class=None):
  """Applies one block's op graph to tensor `x` with freshly created layers.

  With `quant` (anything with `bits(layer_name) -> 8 | 4 | None`), builds the
  quantization-aware version instead (see `build_child`). `bn_class`: see `make_layer`.
  """
  def run(t, layers):
    if quant is not None:
      return run_quant(t, layers, prefix, activation, quant)
    for spec in layers:
      t = make_layer(spec, prefix, activation, bn_momentum, bn_class)(t)
    return t

  def merged(t, name):
    if quant is None or quant.default == "float32":
      return t
    return FakeQuant(name=f"{name}_fq")(t)

  if graph.split:
    keep, x_main = ChannelSplit(name=f"{prefix}_split")(x)
    return merged(keras.layers.Concatenate(name=f"{prefix}_concat")(
        [keep, run(x_main, graph.main)]), f"{prefix}_concat")
  if graph.proj is not None:
    return merged(keras.layers.Concatenate(name=f"{prefix}_concat")(
        [run(x, graph.proj), run(x, graph.main)]), f"{prefix}_concat")
  if not graph.main:
    return x  # the 'zero' op / identity skip: the shortcut alone
  y = run(x, graph.main)
  if graph.residual:
    y = merged(keras.layers.Add(name=f"{prefix}_add")([x, y]), f"{prefix}_add")
  return y
