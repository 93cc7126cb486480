"""Channel-sliceable layers for the SPOS supernet.

Weights are allocated at the largest width the space allows; a call uses the
leading slice `[:c_in, :c_out]` that the sampled architecture asks for, so one
traced graph serves every width and only the sliced weights receive gradients.
BatchNorm is sliced the same way and has three modes (a Python string fixed per
traced function):

- "train": batch statistics; moving statistics of the active channels updated
  with momentum (inactive channels untouched);
- "eval": the moving statistics;
- "calib": batch statistics for the forward pass (as the SPOS code's BN
  recalibration, which runs the net in train mode), while exact per-channel sums
  of x and x^2 over every calibration pixel are accumulated; `finish_calibration`
  turns them into the moving statistics of the channels that were active.
"""

from __future__ import annotations

import keras
import tensorflow as tf

BN_MODES = ("train", "eval", "calib")


def _leading(x, n):
  """x[..., :n] along the last axis, skipped when n is statically the full size."""
  if n is None:
    return x
  if isinstance(n, int) and n == x.shape[-1]:
    return x
  return x[..., :n]


@keras.saving.register_keras_serializable(package="tfnas")
class SlicedConv(keras.layers.Layer):
  """Conv2D / DepthwiseConv2D without bias whose kernel is sliced to the input's
  channels and to `out_channels`.

  Example:
    >>> conv = SlicedConv(64, 1, name="b01_pw1_conv")
    >>> y = conv(x, out_channels=tf.constant(24))  # uses kernel[:, :, :x_channels, :24]

  Args:
    filters: Output channels at full width (ignored for depthwise).
    kernel: Kernel size.
    stride: Stride ('same' padding, as the child's Keras layers).
    depthwise: Depthwise conv (multiplier 1).
    groups: Groups of a regular conv (only at full width).
  """

  def __init__(self, filters: int, kernel: int, stride: int = 1, depthwise: bool = False,
               groups: int = 1, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.kernel_size, self.stride = filters, kernel, stride
    self.depthwise, self.groups = depthwise, groups

  def build(self, input_shape):
    cin = int(input_shape[-1])
    k = self.kernel_size
    shape = (k, k, cin, 1) if self.depthwise else (k, k, cin // self.groups, self.filters)
    # Uniform in +-1/sqrt(fan_in), the true fan-in (k*k for a depthwise filter, not Keras'
    # k*k*cin for a (k, k, cin, 1) kernel). This is PyTorch's default conv init, which the
    # public SPOS supernets train from. Behind BatchNorm a kernel's scale only sets its
    # effective learning rate (lr / |w|^2). He init starts ~2.4x larger, i.e. every conv
    # at ~1/6 of that effective rate while the classifier (no BN after it) keeps its own;
    # with it, uniform sampling was still at chance after 1,000 steps where this init had
    # taken off (BENCHMARKS.md, SPOS sixth round).
    fan_in = k * k * (1 if self.depthwise else cin // self.groups)
    bound = 1.0 / fan_in ** 0.5
    init = keras.initializers.RandomUniform(-bound, bound)
    self.kernel = self.add_weight(shape=shape, initializer=init, name="kernel")

  def call(self, x, out_channels=None):
    """(N, H, W, c_in) -> (N, ceil(H/s), ceil(W/s), c_out) with the leading
    [:c_in, :c_out] slice of the kernel (c_in read from `x`; c_out = `out_channels`, an
    int or scalar int tensor, else all filters; depthwise: c_out = c_in). SPOS Sec. 3.3's
    channel search."""
    strides = (1, self.stride, self.stride, 1)
    cin = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]
    if self.depthwise:
      full = isinstance(cin, int) and cin == self.kernel.shape[2]
      k = self.kernel if full else self.kernel[:, :, :cin, :]
      return tf.nn.depthwise_conv2d(x, k, strides, "SAME")
    k = self.kernel
    if self.groups == 1 and not (isinstance(cin, int) and cin == k.shape[2]):
      k = k[:, :, :cin, :]
    k = _leading(k, out_channels)
    return tf.nn.conv2d(x, k, strides, "SAME")

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel": self.kernel_size,
            "stride": self.stride, "depthwise": self.depthwise, "groups": self.groups}


@keras.saving.register_keras_serializable(package="tfnas")
class SlicedBN(keras.layers.Layer):
  """BatchNormalization over the leading channels of a full-width parameter set.

  Weights in Keras' order (gamma, beta, moving_mean, moving_variance), same
  epsilon and momentum convention as `keras.layers.BatchNormalization`, so a
  child's BN takes the leading slice of each.

  Example:
    >>> bn = SlicedBN(name="b01_pw1_bn")
    >>> y = bn(x, mode="calib")

  Args:
    momentum: Moving-average momentum (Keras convention).
    epsilon: Added to the variance.
    affine: Learn gamma and beta. False keeps them at 1 and 0 (not trainable), as the
      SPOS supernet's choice blocks do: affine parameters shared by paths that switch
      every step blow up (measured: gammas past 300 within 1,500 steps, the supernet
      collapsing to one predicted class).
  """

  def __init__(self, momentum: float = 0.9, epsilon: float = 1e-3, affine: bool = True,
               **kwargs):
    super().__init__(**kwargs)
    self.momentum, self.epsilon, self.affine = momentum, epsilon, affine

  def build(self, input_shape):
    c = int(input_shape[-1])
    # Statistics are replica-local (on read: the mean over replicas), so a replica updates
    # its own copy inside `switch_case` without a cross-replica sync point.
    def stat(name, init):
      with keras.name_scope(self.name, caller=self):
        return keras.Variable(keras.initializers.get(init), shape=(c,), dtype="float32",
                              trainable=False, name=name, aggregation="mean",
                              synchronization="on_read")
    self.gamma = self.add_weight(shape=(c,), initializer="ones", name="gamma",
                                 trainable=self.affine)
    self.beta = self.add_weight(shape=(c,), initializer="zeros", name="beta",
                                trainable=self.affine)
    self.moving_mean = stat("moving_mean", "zeros")
    self.moving_variance = stat("moving_variance", "ones")
    # Calibration accumulators: per-channel sums over pixels, and the pixel count.
    self.calib_sum = stat("calib_sum", "zeros")
    self.calib_sq = stat("calib_sq", "zeros")
    self.calib_count = stat("calib_count", "zeros")

  def _pad(self, v, c):
    """`v` (the `c` active channels) zero-padded to the full width."""
    return tf.pad(v, [[0, self.gamma.shape[0] - c]])

  def call(self, x, mode: str = "eval"):
    """(N, H, W, c) -> same shape, with the leading c channels of the statistics (and
    gamma/beta): "train" normalizes by the batch and moves the statistics' slice,
    "eval" by the moving statistics, "calib" by the batch while accumulating exact sums
    for `finish_calibration`. Raises ValueError for another mode."""
    if mode not in BN_MODES:
      raise ValueError(f"unknown BN mode {mode!r}; expected one of {BN_MODES}")
    c = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]
    # Without affine parameters gamma is 1 and beta 0: leaving them out is the same
    # function with fewer ops (graph building time is most of a supernet's first step).
    gamma = _leading(self.gamma, c) if self.affine else None
    beta = _leading(self.beta, c) if self.affine else None
    if mode == "eval":
      mean, var = _leading(self.moving_mean, c), _leading(self.moving_variance, c)
    else:
      mean, var = tf.nn.moments(x, axes=[0, 1, 2])
      if mode == "train":
        # v <- m·v + (1 - m)·new on the active channels, written as an increment
        # padded with zeros, so the inactive channels are left exactly as they were.
        m = self.momentum
        for v, new in ((self.moving_mean, mean), (self.moving_variance, var)):
          v.assign_add(self._pad((new - _leading(v, c)) * (1 - m), c))
      else:
        # The sums follow from the batch moments already computed (sum = n·mean,
        # sum of squares = n·(var + mean²)): two fewer passes over the activation.
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
        self.calib_sum.assign_add(self._pad(mean * n, c))
        self.calib_sq.assign_add(self._pad((var + tf.square(mean)) * n, c))
        self.calib_count.assign_add(self._pad(tf.fill(tf.shape(mean), n), c))
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, self.epsilon)

  def start_calibration(self):
    """Zeroes the per-channel sums that `bn_mode="calib"` calls accumulate (SPOS
    Sec. 3.3's exact recalibration starts here)."""
    for v in (self.calib_sum, self.calib_sq, self.calib_count):
      v.assign(tf.zeros_like(v))

  def finish_calibration(self):
    """Moving statistics := exact mean and (biased) variance of the channels seen."""
    n = self.calib_count
    seen = n > 0
    safe = tf.maximum(n, 1.0)
    mean = self.calib_sum / safe
    var = tf.maximum(self.calib_sq / safe - tf.square(mean), 0.0)
    self.moving_mean.assign(tf.where(seen, mean, self.moving_mean))
    self.moving_variance.assign(tf.where(seen, var, self.moving_variance))

  @property
  def keras_weights(self) -> list:
    """The four weights a `keras.layers.BatchNormalization` holds, in its order."""
    return [self.gamma, self.beta, self.moving_mean, self.moving_variance]

  def get_config(self):
    return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
            "affine": self.affine}
