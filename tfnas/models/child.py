"""Child builder: a resolved architecture as a plain functional Keras model.

Every layer is a stock Keras layer (Conv2D, DepthwiseConv2D,
BatchNormalization, ReLU, Add, Concatenate, Dense, ...), except the two
weightless channel-shuffle layers of ShuffleNet-style units (`ChannelSplit`,
`ChannelShuffle`) and MobileNetV3's `SqueezeExcite` and `HardSwish`, and is named
``<block>_<role>`` (e.g. ``b03_dw_conv``) so per-layer recipes can address it.
The layers come from the spec through `tfnas.layers.from_spec`.
"""

from __future__ import annotations

import keras

from tfnas.layers.from_spec import (ChannelShuffle, ChannelSplit, HardSwish, SqueezeExcite,
                                    apply_graph, apply_pool, make_layer, run_quant)
from tfnas.layers.quant import FakeQuant, QuantDense
from tfnas.spaces import SearchSpace, get_space, parse_arch
from tfnas.spaces.analysis import block_graph

__all__ = ["build_child", "apply_graph", "make_layer", "ChannelShuffle", "ChannelSplit",
           "SqueezeExcite", "HardSwish"]


def build_child(space: SearchSpace | str, arch, *, resolution: int | None = None,
                width: float | None = None, num_classes: int | None = None,
                dropout: float | None = None, bn_momentum: float = 0.9,
                name: str | None = None, quant=None) -> keras.Model:
  """Builds `arch` of `space` as a functional model of stock Keras layers.

  Args:
    space: A `SearchSpace` or a registered name.
    arch: Anything `parse_arch` reads (Arch, canonical string, reference name).
    resolution: Input resolution override (square).
    width: Width multiplier override.
    num_classes: Number of classes override.
    dropout: Dropout before the classifier (default: the head's).
    bn_momentum: BatchNormalization momentum (Keras convention).
    name: Model name (default: the space name).
    quant: None for the float model; or a precision recipe (anything with
      `bits(layer_name) -> 8 | 4 | None`, e.g. `tfnas.export.recipe.Recipe`) for
      the quantization-aware model: every conv with its BatchNorm folded into one
      `QuantConv` named like the float conv, fake-quantized weights at the
      recipe's bits, and a `FakeQuant` after every tensor TFLite keeps in int8.
      Float weights for it come from `tfnas.export.qat.fold_weights`.

  Returns:
    An uncompiled `keras.Model` from images (normalized float32) to logits.
  """
  if isinstance(space, str):
    space = get_space(space, resolution, width or 1.0, num_classes)
  elif resolution or width or num_classes:
    space = get_space(space.name, resolution or space.input_shape[0], width or 1.0,
                      num_classes or space.head.num_classes)
  arch = parse_arch(space, arch)
  act = space.activation
  inputs = keras.Input(space.input_shape, name="image")
  x = inputs
  if quant is not None:
    # Tensors between layers are fake-quantized unless the recipe's default is float.
    fq = (lambda t, name: t) if quant.default == "float32" else (
        lambda t, name: FakeQuant(name=name)(t))
    x = fq(x, "image_fq")
    x = run_quant(x, space.stem_layers, "stem", act, quant)
  else:
    for spec in space.stem_layers:
      x = make_layer(spec, "stem", act, bn_momentum)(x)
  for i, block in enumerate(space.blocks):
    x = apply_graph(x, block_graph(space, arch, i), block.name, act, bn_momentum, quant)
  if quant is not None:
    x = run_quant(x, space.head_layers, "head", act, quant)
  else:
    for spec in space.head_layers:
      x = make_layer(spec, "head", act, bn_momentum)(x)
  x = apply_pool(x, space.pooled_layers, act, quant)
  rate = space.head.dropout if dropout is None else dropout
  if quant is not None:
    if rate:
      x = keras.layers.Dropout(rate, name="dropout")(x)
    bits = quant.bits("classifier")
    outputs = QuantDense(space.head.num_classes, weight_bits=bits, name="classifier")(x)
    if bits or quant.default != "float32":
      outputs = FakeQuant(name="classifier_fq")(outputs)
    return keras.Model(inputs, outputs, name=name or space.name)
  if rate:
    x = keras.layers.Dropout(rate, name="dropout")(x)
  outputs = keras.layers.Dense(space.head.num_classes, name="classifier")(x)
  return keras.Model(inputs, outputs, name=name or space.name)

