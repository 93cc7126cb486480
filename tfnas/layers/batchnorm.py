"""BatchNormalization whose training step is TensorFlow's fused kernel.

Supernet steps are built by creating one graph op at a time in Python, and Keras 3's
`BatchNormalization` computes training-mode statistics with about twenty ops (moments,
rsqrt, scale and shift) plus as many for their gradient; `FusedBatchNormV3` is one op
and its gradient one more. In a ProxylessNAS choice block (6 MBConv candidates, 18 BNs,
forward and gradient inside `switch_case`) that is 2,522 graph nodes instead of 3,389
(measured on `proxyless_cifar` width 0.25, block b05).
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfnas")
class FusedBatchNorm(keras.layers.BatchNormalization):
  """`keras.layers.BatchNormalization` with a fused training-mode call.

  The same weights (gamma, beta, moving_mean, moving_variance, in Keras' order) and the
  same function: in training, the batch's mean and biased variance over N, H, W
  normalize (Ioffe & Szegedy 2015, Algorithm 1) and update the moving statistics with
  Keras' momentum convention (the fused kernel returns the unbiased variance; it is
  scaled back by (n - 1) / n, n = N·H·W). Inference, masks, renorm, other ranks or
  dtypes take Keras' own path. Weights load into and from a stock Keras layer.

  Example:
    >>> bn = FusedBatchNorm(momentum=0.9, epsilon=1e-3, name="b01_expand_bn")
    >>> y = bn(x, training=True)  # x: (N, H, W, C) float32

  Args: as `keras.layers.BatchNormalization`.
  """

  def call(self, inputs, training=None, mask=None):
    """(N, H, W, C) float32 -> same shape. Training: one fused kernel normalizes by the
    batch's statistics and the moving statistics move by `momentum` (unbiased variance,
    as Keras keeps it); anything else: Keras' own BatchNormalization."""
    rank = len(inputs.shape)
    if (not (training and self.trainable) or mask is not None or self.renorm or rank != 4
        or self.axis not in (-1, 3) or inputs.dtype != tf.float32):
      return super().call(inputs, training=training, mask=mask)
    c = inputs.shape[-1]
    scale = tf.convert_to_tensor(self.gamma) if self.scale else tf.ones([c])
    offset = tf.convert_to_tensor(self.beta) if self.center else tf.zeros([c])
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, scale, offset, epsilon=self.epsilon, is_training=True)
    n = inputs.shape[0] * inputs.shape[1] * inputs.shape[2] if None not in inputs.shape[:3] \
        else tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), tf.float32)
    variance = variance * ((n - 1.0) / n)
    m = self.momentum
    self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
    self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
    return y
