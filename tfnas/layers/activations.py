"""The activation functions of the spec (`tfnas.spaces.spec.ACTIVATIONS`) on tensors: the
float layers (`tfnas.layers.from_spec`) and the fused activation of `QuantConv` compute
them here, so both build the same graph."""

from __future__ import annotations

from keras import ops


def hard_swish(x):
  """MobileNetV3's hard swish (Howard et al., ICCV 2019, Eq. 2) as (x / 6) * relu6(x + 3).

  In this order TFLite's converter keeps it as ADD (ReLU6 fused) and two MULs, which
  XNNPACK runs at int8. Written x * relu6(x + 3) / 6 (Keras' `hard_silu`) the converter
  fuses one HARD_SWISH op, which this LiteRT's XNNPACK delegate does not take at int8: an
  int8 `ofa_mbv3` file then splits into 28 partitions and ran 1.6x slower here
  (BENCHMARKS.md, "MobileNetV3 blocks as int8"); float32 runs either form inside XNNPACK."""
  return (x * (1.0 / 6.0)) * ops.relu6(x + 3.0)


def apply(activation: str | None, x):
  """`activation` ("relu", "relu6", "hswish", or None: none) applied to tensor `x`.
  Raises ValueError for another name."""
  if activation is None:
    return x
  if activation == "relu":
    return ops.relu(x)
  if activation == "relu6":
    return ops.relu6(x)
  if activation == "hswish":
    return hard_swish(x)
  raise ValueError(f"activation {activation!r} is not one of relu, relu6, hswish")
