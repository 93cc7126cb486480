"""Quantization-aware training: fold BatchNorm, calibrate fake-quant ranges, fine-tune.

    qmodel = build_child(space, arch, quant=recipe)   # QuantConv/FakeQuant layers
    fold_weights(float_model, qmodel)                  # conv * gamma/sigma, BN into bias
    calibrate(qmodel, images, steps)                   # activation ranges
    finetune(qmodel, dataset, steps, lr)               # QAT
    quantize.convert(qmodel, "qat")                    # real int8 (int4) ops

A recipe with float32 layers cannot go through the converter's QAT path (it
quantizes any op whose input and output carry ranges), so `unquantized` gives the
fine-tuned weights as a plain folded float model for `quantize.quantize_recipe`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfnas.errors import TfnasError
from tfnas.layers.from_spec import SqueezeExcite
from tfnas.layers.quant import QuantConv, QuantDense


def fold_weights(float_model: keras.Model, qmodel: keras.Model) -> None:
  """Sets `qmodel`'s folded conv/dense weights from the trained float model (and its
  squeeze-and-excitation layers' weights: QAT has no fake-quant inside or after them, so
  the converter leaves them float between int8 ops, with QUANTIZE/DEQUANTIZE around)."""
  for layer in qmodel.layers:
    if isinstance(layer, QuantConv):
      conv_name, bn_name = layer.folded_from
      conv = float_model.get_layer(conv_name)
      kernel = np.asarray(conv.kernel)
      out = kernel.shape[2] if layer.depthwise else kernel.shape[3]
      scale, shift = np.ones(out, np.float32), np.zeros(out, np.float32)
      if bn_name:
        bn = float_model.get_layer(bn_name)
        gamma = np.asarray(bn.gamma) if bn.scale else 1.0
        beta = np.asarray(bn.beta) if bn.center else 0.0
        scale = gamma / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
        shift = beta - np.asarray(bn.moving_mean) * scale
      kernel = kernel * (scale[None, None, :, None] if layer.depthwise else scale)
      layer.set_weights([kernel.astype(np.float32), shift.astype(np.float32)])
    elif isinstance(layer, (QuantDense, SqueezeExcite)):
      source = float_model.get_layer(layer.name)
      layer.set_weights([np.asarray(w) for w in source.weights])


def calibrate(qmodel: keras.Model, images, steps: int) -> None:
  """Initializes activation ranges from `steps` batches of `images` (no weight update)."""
  step = tf.function(lambda x: qmodel(x, training=True))
  n = 0
  for x in images:
    step(x)
    n += 1
    if n >= steps:
      break
  if n == 0:
    raise TfnasError("QAT calibration got no images")


def finetune(qmodel: keras.Model, dataset, steps: int, lr: float, verbose: int = 0) -> dict:
  """Quantization-aware fine-tuning on batched (image, label) `dataset` for `steps` steps."""
  if steps <= 0:
    return {}
  schedule = keras.optimizers.schedules.CosineDecay(lr, steps)
  qmodel.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])
  history = qmodel.fit(dataset.repeat(), steps_per_epoch=steps, epochs=1, verbose=verbose)
  return {k: float(v[-1]) for k, v in history.history.items()}


def unquantized(qmodel: keras.Model, space, arch) -> keras.Model:
  """The folded float model (no fake-quant) with `qmodel`'s fine-tuned weights."""
  from tfnas.export.recipe import Recipe
  from tfnas.models.child import build_child
  fmodel = build_child(space, arch, quant=Recipe.uniform("float32"), dropout=0.0)
  for layer in fmodel.layers:
    if isinstance(layer, (QuantConv, QuantDense, SqueezeExcite)):
      layer.set_weights(qmodel.get_layer(layer.name).get_weights())
  return fmodel
