"""Keras-native fake-quantization layers for quantization-aware training.

The TFLite converter turns `tf.quantization.fake_quant_*` ops (which
`keras.quantizers.fake_quant_with_min_max_vars` lowers to on the TensorFlow
backend) into real int8 (or int4-weight) kernels. Weights are quantized per
output channel, symmetric, from their current absolute maximum; activations per
tensor from a moving average of the observed range, as in the TFLite QAT recipe.
BatchNorm is folded into the convolution before training (`QuantConv` holds the
folded kernel and bias), so what is trained is what the converter emits.
"""

from __future__ import annotations

import keras
from keras import ops

from tfnas.layers import activations

MIN_RANGE = 1e-3  # collapsed activation ranges are widened to at least this


def _weight_fq(kernel, bits: int, axis: int | None):
  """Symmetric fake quantization of `kernel`, per channel along `axis` (None: per tensor)."""
  reduce = [i for i in range(len(kernel.shape)) if i != axis]
  m = ops.maximum(ops.max(ops.abs(kernel), axis=reduce), 1e-8)
  return keras.quantizers.fake_quant_with_min_max_vars(kernel, -m, m, num_bits=bits,
                                                       narrow_range=True, axis=axis)


@keras.saving.register_keras_serializable(package="tfnas")
class FakeQuant(keras.layers.Layer):
  """Per-tensor int8 fake quantization with moving-average min/max.

  In training the range follows the batch min/max with `decay` (the first batch
  sets it); at inference the stored range is used. The range always includes 0
  and is at least `MIN_RANGE` wide, so a dead tensor cannot produce a zero scale.

  Example:
    >>> y = FakeQuant(name="b01_add_fq")(keras.Input((8, 8, 16)))
  """

  def __init__(self, decay: float = 0.99, **kwargs):
    super().__init__(**kwargs)
    self.decay = decay

  def build(self, input_shape):
    self.min = self.add_weight(name="min", shape=(), initializer="zeros", trainable=False)
    self.max = self.add_weight(name="max", shape=(), initializer="zeros", trainable=False)
    self.seen = self.add_weight(name="seen", shape=(), initializer="zeros", trainable=False)

  def call(self, x, training=False):
    """Any shape -> same shape, fake-quantized to 8 bits over [min, max] (0 included).
    Training moves min/max towards the batch's range (EMA with `decay`; the first batch
    sets them), as TFLite's QAT observers do."""
    if training:
      lo = ops.minimum(ops.min(x), 0.0)
      hi = ops.maximum(ops.max(x), 0.0)
      first = ops.cast(self.seen < 0.5, x.dtype)
      d = self.decay * (1.0 - first)
      self.min.assign(d * self.min + (1.0 - d) * lo)
      self.max.assign(d * self.max + (1.0 - d) * hi)
      self.seen.assign(1.0)
    lo = ops.minimum(self.min, 0.0)
    hi = ops.maximum(ops.maximum(self.max, 0.0), lo + MIN_RANGE)
    return keras.quantizers.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8)

  def get_config(self):
    return {**super().get_config(), "decay": self.decay}


@keras.saving.register_keras_serializable(package="tfnas")
class QuantConv(keras.layers.Layer):
  """Conv2D or depthwise conv with BatchNorm folded in, fake-quantized weights, activation.

  Args:
    filters: Output channels (ignored for depthwise).
    kernel_size: Square kernel size.
    strides: Stride.
    depthwise: Depthwise convolution (channel multiplier 1).
    groups: Groups of a normal convolution.
    activation: None, "relu", "relu6" (fused after the bias, as TFLite fuses them) or
      "hswish" (`tfnas.layers.activations.hard_swish`).
    weight_bits: 8, 4 or None (float weights: the layer stays float in the file).
    folded_from: Names of the float model's conv and BatchNorm layers it replaces.
  """

  def __init__(self, filters: int, kernel_size: int, strides: int = 1, depthwise: bool = False,
               groups: int = 1, activation: str | None = None, weight_bits: int | None = 8,
               folded_from: tuple[str, str] | list | None = None, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
    self.depthwise, self.groups, self.activation = depthwise, groups, activation
    self.weight_bits = weight_bits
    self.folded_from = tuple(folded_from) if folded_from else None

  def build(self, input_shape):
    cin = input_shape[-1]
    k = self.kernel_size
    if self.depthwise:
      shape, out = (k, k, cin, 1), cin
    else:
      shape, out = (k, k, cin // self.groups, self.filters), self.filters
    self.kernel = self.add_weight(name="kernel", shape=shape, initializer="he_normal")
    self.bias = self.add_weight(name="bias", shape=(out,), initializer="zeros")

  def call(self, x):
    """(N, H, W, Cin) -> (N, ceil(H/s), ceil(W/s), Cout), "same" padding; the kernel
    fake-quantized per output channel to `weight_bits` when set."""
    kernel = self.kernel
    if self.weight_bits:
      kernel = _weight_fq(kernel, self.weight_bits, axis=2 if self.depthwise else 3)
    if self.depthwise:
      y = ops.depthwise_conv(x, kernel, strides=self.strides, padding="same")
    else:
      y = ops.conv(x, kernel, strides=self.strides, padding="same")
    return activations.apply(self.activation, y + self.bias)

  def compute_output_shape(self, input_shape):
    h = None if input_shape[1] is None else -(-input_shape[1] // self.strides)
    w = None if input_shape[2] is None else -(-input_shape[2] // self.strides)
    return (input_shape[0], h, w, input_shape[-1] if self.depthwise else self.filters)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
            "strides": self.strides, "depthwise": self.depthwise, "groups": self.groups,
            "activation": self.activation, "weight_bits": self.weight_bits,
            "folded_from": list(self.folded_from) if self.folded_from else None}


@keras.saving.register_keras_serializable(package="tfnas")
class QuantDense(keras.layers.Dense):
  """Dense with fake-quantized weights (`weight_bits` 8, 4 or None), per tensor.

  Per tensor because the converter transposes the kernel to TFLite's (out, in)
  layout and refuses a per-channel axis through that transpose.
  """

  def __init__(self, units: int, weight_bits: int | None = 8, **kwargs):
    super().__init__(units, **kwargs)
    self.weight_bits = weight_bits

  def call(self, x):
    """(N, in) -> (N, units); the kernel fake-quantized per tensor when `weight_bits`."""
    kernel = self.kernel
    if self.weight_bits:
      kernel = _weight_fq(kernel, self.weight_bits, axis=None)
    y = ops.matmul(x, kernel)
    return y + self.bias if self.use_bias else y

  def get_config(self):
    return {**super().get_config(), "weight_bits": self.weight_bits}
