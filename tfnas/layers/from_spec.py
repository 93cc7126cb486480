"""Stock Keras layers from the spec: one `LayerSpec` (`make_layer`) or one block's `OpGraph`
(`apply_graph`), float or quantization-aware, the two weightless channel-shuffle
layers of ShuffleNet-style units (`ChannelSplit`, `ChannelShuffle`), MobileNetV3's
squeeze-and-excitation (`SqueezeExcite`) and the classifier's input (`apply_pool`).

The child builder (`tfnas.models.child`), the ProxylessNAS `MixedOp` candidates and fast
piece generation all build their layers here, so a layer is named
``<prefix>_<role>`` (e.g. ``b03_dw_conv``) wherever it is built.
"""

from __future__ import annotations

import keras

from tfnas.layers.activations import hard_swish
from tfnas.layers.quant import FakeQuant, QuantConv, QuantDense
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


@keras.saving.register_keras_serializable(package="tfnas")
class SqueezeExcite(keras.layers.Layer):
  """Squeeze-and-excitation as MobileNetV3 (Howard et al., ICCV 2019, Sec. 5.3) and
  Once-for-All's `SELayer` place it after the depthwise conv: global average pool, 1x1
  conv to `mid` channels with bias, ReLU, 1x1 conv back with bias, hard sigmoid
  relu6(s + 3) / 6, times the input. TFLite: MEAN, CONV_2D, CONV_2D, hard sigmoid, MUL.

  Weights: `reduce_kernel` (1, 1, C, mid), `reduce_bias` (mid,), `expand_kernel`
  (1, 1, mid, C), `expand_bias` (C,).

  Example:
    >>> y = SqueezeExcite(mid=40, name="b04_se")(keras.Input((28, 28, 144)))
  """

  def __init__(self, mid: int, **kwargs):
    super().__init__(**kwargs)
    self.mid = int(mid)

  def build(self, input_shape):
    c = input_shape[-1]
    self.reduce_kernel = self.add_weight(name="reduce_kernel", shape=(1, 1, c, self.mid),
                                         initializer="he_normal")
    self.reduce_bias = self.add_weight(name="reduce_bias", shape=(self.mid,),
                                       initializer="zeros")
    self.expand_kernel = self.add_weight(name="expand_kernel", shape=(1, 1, self.mid, c),
                                         initializer="he_normal")
    self.expand_bias = self.add_weight(name="expand_bias", shape=(c,), initializer="zeros")

  def call(self, x):
    """(N, H, W, C) -> (N, H, W, C): x scaled per channel by its excitation in (0, 1)."""
    s = keras.ops.mean(x, axis=(1, 2), keepdims=True)
    s = keras.ops.relu(keras.ops.conv(s, self.reduce_kernel) + self.reduce_bias)
    s = keras.ops.conv(s, self.expand_kernel) + self.expand_bias
    return x * keras.ops.hard_sigmoid(s)

  def get_config(self):
    return {**super().get_config(), "mid": self.mid}


@keras.saving.register_keras_serializable(package="tfnas")
class HardSwish(keras.layers.Layer):
  """`tfnas.layers.activations.hard_swish` as a layer: (N, ...) -> (N, ...), same shape.

  Example:
    >>> y = HardSwish(name="b12_dw_hswish")(keras.Input((14, 14, 96)))
  """

  def call(self, x):
    return hard_swish(x)


def activation_layer(activation: str, name: str):
  """The Keras layer of one of `tfnas.spaces.spec.ACTIVATIONS`: ReLU, ReLU6 (`ReLU`) or
  hard swish (`HardSwish`). Raises ValueError for another name."""
  if activation in ("relu", "relu6"):
    return keras.layers.ReLU(max_value=6.0 if activation == "relu6" else None, name=name)
  if activation == "hswish":
    return HardSwish(name=name)
  raise ValueError(f"activation {activation!r} is not one of relu, relu6, hswish")


def make_layer(spec: LayerSpec, prefix: str, activation: str, bn_momentum: float = 0.9,
               bn_class=None):
  """The stock Keras layer (or small chain) for one `LayerSpec`; a callable. An "act"
  layer's function is its spec's `activation`, else `activation` (the space's).

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
    return activation_layer(spec.activation or activation, name)
  if spec.type == "se":
    return SqueezeExcite(spec.mid, name=name)
  if spec.type == "shuffle":
    return ChannelShuffle(spec.groups, name=name)
  raise AssertionError(spec.type)


def apply_pool(x, pooled_layers, activation: str, quant=None):
  """Global average pooling, then the space's pooled 1x1 conv (`pooled_layers`, a
  `SearchSpace.pooled_layers`; none: plain pooling): (N, H, W, C) -> (N, features).

  The 1x1 conv of a 1x1 map is built as the `Dense` layer it equals ("head_mix_conv",
  no bias), so TFLite runs FULLY_CONNECTED without the reshape ops (SHAPE, PACK, ...) a
  flatten adds for a dynamic batch, which split the graph off XNNPACK. `quant`: see
  `apply_graph` (the layer is then a `QuantDense`; the pooled features and the
  activation's output are fake-quantized unless the recipe's default is float)."""
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  quantized = quant is not None and quant.default != "float32"
  if quantized:
    x = FakeQuant(name="pool_fq")(x)
  for spec in pooled_layers:
    name = f"head_{spec.role}"
    if spec.type == "conv":
      if quant is not None:
        x = QuantDense(spec.out_shape[2], weight_bits=quant.bits(name), use_bias=False,
                       name=name)(x)
      else:
        x = keras.layers.Dense(spec.out_shape[2], use_bias=False, name=name,
                               kernel_initializer="he_normal")(x)
    else:
      x = make_layer(spec, "head", activation)(x)
      if quantized:
        x = FakeQuant(name=f"{name}_fq")(x)
  return x


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
                    groups=spec.groups,
                    activation=(act.activation or activation) if act else None,
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
