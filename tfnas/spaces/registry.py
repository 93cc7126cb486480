"""The registry of named search spaces.

`get_space(name, resolution=None, width=1.0, num_classes=None)` builds the
spec. Resolution, width multiplier and class count change shapes but never
the set of choices, so an arch is valid for a space at any size.
"""

from __future__ import annotations

import numbers
from typing import Callable

from tfnas.errors import TfnasError
from tfnas.spaces import spec as S

_FACTORIES: dict[str, tuple[Callable[..., S.SearchSpace], int]] = {}

MBCONV_OPS = tuple(
    S.Op(f"k{k}_e{e}", S.MBCONV, kernel=k, expand=e) for k in (3, 5, 7) for e in (3, 6))
ZERO_OP = S.Op("zero", S.ZERO)
SPOS_OPS = (S.Op("choice_3", S.SHUFFLE, kernel=3), S.Op("choice_5", S.SHUFFLE, kernel=5),
            S.Op("choice_7", S.SHUFFLE, kernel=7), S.Op("choice_x", S.XCEPTION, kernel=3))
SPOS_MID_SCALES = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
# NAS-Bench-Macro's encoding, op index 0..2 (its 8-digit codes): identity (a 1x1 conv with
# the stride + BN where stride or width change), MBConv k3 e3, MBConv k5 e6.
NASBENCH_MACRO_OPS = (S.Op("id", S.SKIP), S.Op("k3_e3", S.MBCONV, kernel=3, expand=3),
                      S.Op("k5_e6", S.MBCONV, kernel=5, expand=6))
# Once-for-All's MobileNetV3 choices (Cai et al., ICLR 2020, Sec. 3.1): kernel {3, 5, 7} x
# expansion {3, 4, 6}.
OFA_OPS = tuple(S.Op(f"k{k}_e{e}", S.MBCONV, kernel=k, expand=e) for k in (3, 5, 7)
                for e in (3, 4, 6))
# HW-NAS-Bench FBNet encoding, op index 0..8.
FBNET_OPS = (
    S.Op("k3_e1", S.IRF, kernel=3, expand=1), S.Op("k3_e1_g2", S.IRF, kernel=3, expand=1, groups=2),
    S.Op("k3_e3", S.IRF, kernel=3, expand=3), S.Op("k3_e6", S.IRF, kernel=3, expand=6),
    S.Op("k5_e1", S.IRF, kernel=5, expand=1), S.Op("k5_e1_g2", S.IRF, kernel=5, expand=1, groups=2),
    S.Op("k5_e3", S.IRF, kernel=5, expand=3), S.Op("k5_e6", S.IRF, kernel=5, expand=6),
    S.Op("skip", S.SKIP))


def register(name: str, default_resolution: int):
  """Decorator registering a space factory `f(resolution, width, num_classes)`."""
  def wrap(fn):
    if name in _FACTORIES:
      raise ValueError(f"space {name!r} registered twice")
    _FACTORIES[name] = (fn, int(default_resolution))
    return fn
  return wrap


def list_spaces() -> list[str]:
  """The registered space names, sorted."""
  return sorted(_FACTORIES)


def get_space(name: str, resolution: int | None = None, width: float = 1.0,
              num_classes: int | None = None) -> S.SearchSpace:
  """Returns the registered space `name`, optionally resized."""
  if name not in _FACTORIES:
    raise TfnasError(f"unknown search space {name!r}; registered: {', '.join(list_spaces())}")
  fn, default_res = _FACTORIES[name]
  # None means the space's own resolution; 0 is a bad value, not a request for the default.
  resolution = default_res if resolution is None else resolution
  if not isinstance(resolution, numbers.Integral) or isinstance(resolution, bool):
    raise TfnasError(f"resolution {resolution!r} for space {name!r} must be an integer >= 8")
  resolution = int(resolution)
  if resolution < 8:
    raise TfnasError(f"resolution {resolution} for space {name!r} is too small; expected >= 8")
  if not width > 0:
    raise TfnasError(f"width multiplier {width!r} must be > 0")
  if num_classes is not None and num_classes < 2:
    raise TfnasError(f"num_classes {num_classes!r} must be >= 2")
  return fn(resolution, width, num_classes)


def _op_macs(block: S.Block, op: S.Op, act: str) -> int:
  return sum(l.macs for l in block.graph(op, act).layers())


def _references(blocks, act, named: dict[str, tuple[int, ...]]):
  """Adds 'smallest' / 'largest' (by MACs, per block: MACs are additive)."""
  choice = [b for b in blocks if len(b.ops) > 1]
  small = tuple(min(range(len(b.ops)), key=lambda i: (_op_macs(b, b.ops[i], act), i)) for b in choice)
  large = tuple(max(range(len(b.ops)), key=lambda i: (_op_macs(b, b.ops[i], act), -i)) for b in choice)
  return tuple(named.items()) + (("smallest", small), ("largest", large))


def _mbconv_space(name, resolution, width, num_classes, stem_stride, stage_strides,
                  description):
  """ProxylessNAS layout: stem conv 32, fixed MBConv e1 k3 -> 16, 6 choice stages."""
  widths, depths = (24, 40, 80, 96, 192, 320), (4, 4, 4, 4, 4, 1)
  act = "relu6"
  c = lambda x: S.make_divisible(x * width)
  stem_c = c(32)
  h = S.conv_out(resolution, stem_stride)
  first = S.Block("first", (h, h, stem_c), (h, h, c(16)), 1,
                  (S.Op("k3_e1", S.MBCONV, kernel=3, expand=1),))
  blocks = [first]
  shape = first.out_shape
  i = 0
  for stage, (w, d, s) in enumerate(zip(widths, depths, stage_strides), 1):
    for j in range(d):
      stride = s if j == 0 else 1
      hh = S.conv_out(shape[0], stride)
      out = (hh, hh, c(w))
      probe = S.Block("", shape, out, stride, ())
      ops = MBCONV_OPS + ((ZERO_OP,) if probe.same_shape else ())
      blocks.append(S.Block(f"b{i:02d}", shape, out, stride, ops, stage=stage))
      shape, i = out, i + 1
  choice = [b for b in blocks if len(b.ops) > 1]
  # MobileNetV2's stage depths (2,3,4,3,3,1) at its expansion 6, skipping the rest.
  mbv2_depth = (2, 3, 4, 3, 3, 1)
  mbv2 = []
  for b in choice:
    j = [x for x in choice if x.stage == b.stage].index(b)
    mbv2.append(1 if j < mbv2_depth[b.stage - 1] else len(b.ops) - 1)
  named = {"all_k3_e3": (0,) * len(choice), "all_k3_e6": (1,) * len(choice),
           "all_k5_e3": (2,) * len(choice), "all_k7_e6": (5,) * len(choice),
           "mobilenetv2_depths": tuple(mbv2)}
  head_c = 1280 if width <= 1 else c(1280)
  return S.SearchSpace(
      name=name, input_shape=(resolution, resolution, 3), stem=(stem_c, 3, stem_stride),
      blocks=tuple(blocks), head=S.Head(head_c, num_classes or 1000), activation=act,
      references=_references(blocks, act, named), description=description)


@register("proxyless_mobile", 224)
def proxyless_mobile(resolution, width, num_classes):
  """The `proxyless_mobile` space: ProxylessNAS (Cai et al., ICLR 2019) Sec. 4.2, the Pixel-1 table's space. `resolution` in px, `width` the channel multiplier,
  `num_classes` (None: the space's default); the layout is in its `description`."""
  return _mbconv_space(
      "proxyless_mobile", resolution, width, num_classes or 1000, 2, (2, 2, 2, 1, 2, 1),
      "ProxylessNAS ImageNet space (matches the Pixel-1 lookup table): 3x3 conv 32 s2; "
      "fixed MBConv e1 k3 -> 16; 21 choice blocks in stages 24,40,80,96,192,320 x 4,4,4,4,4,1 "
      "(first strides 2,2,2,1,2,1), each MBConv k{3,5,7} x e{3,6} plus 'zero' where shapes "
      "match; 1x1 conv 1280, GAP, dense. ReLU6.")


@register("proxyless_cifar", 32)
def proxyless_cifar(resolution, width, num_classes):
  """The `proxyless_cifar` space: ProxylessNAS's choices at CIFAR-10 size. `resolution` in px, `width` the channel multiplier,
  `num_classes` (None: the space's default); the layout is in its `description`."""
  return _mbconv_space(
      "proxyless_cifar", resolution, width, num_classes or 10, 1, (1, 2, 2, 1, 2, 1),
      "ProxylessNAS choices at CIFAR size: 3x3 conv 32 s1; fixed MBConv e1 k3 -> 16; stages "
      "24,40,80,96,192,320 x 4,4,4,4,4,1 with first strides 1,2,2,1,2,1, so 32x32 input runs "
      "stages at 32,16,8,8,4,4; 1x1 conv 1280, GAP, dense 10. ReLU6.")


def _stages(shape, widths, depths, first_strides, ops, c, mid_scales=()):
  """Choice blocks b00, b01, ... stage by stage; each stage's first block takes its stride."""
  blocks = []
  for stage, (w, d, s) in enumerate(zip(widths, depths, first_strides), 1):
    for j in range(d):
      stride = s if j == 0 else 1
      hh = S.conv_out(shape[0], stride)
      out = (hh, hh, c(w))
      blocks.append(S.Block(f"b{len(blocks):02d}", shape, out, stride, ops, mid_scales, stage))
      shape = out
  return blocks


def _shufflenet_space(name, resolution, width, num_classes, stem_stride, first_strides,
                      description):
  """SPOS layout: stem conv 16, 20 ShuffleNetV2 choice blocks in 4 stages, conv 1024."""
  act = "relu"
  c = lambda x: S.make_divisible(x * width)
  h = S.conv_out(resolution, stem_stride)
  blocks = _stages((h, h, c(16)), (64, 160, 320, 640), (4, 4, 8, 4), first_strides, SPOS_OPS, c,
                   SPOS_MID_SCALES)
  n = len(blocks)
  named = {f"all_{op.name}": (k,) * n for k, op in enumerate(SPOS_OPS)}
  return S.SearchSpace(
      name=name, input_shape=(resolution, resolution, 3), stem=(c(16), 3, stem_stride),
      blocks=tuple(blocks), head=S.Head(1024 if width <= 1 else c(1024), num_classes),
      activation=act, references=_references(blocks, act, named), description=description)


@register("spos_shufflenet", 224)
def spos_shufflenet(resolution, width, num_classes):
  """The `spos_shufflenet` space: SPOS (Guo et al., ECCV 2020) Table 2. `resolution` in px, `width` the channel multiplier,
  `num_classes` (None: the space's default); the layout is in its `description`."""
  return _shufflenet_space(
      "spos_shufflenet", resolution, width, num_classes or 1000, 2, (2, 2, 2, 2),
      "SPOS supernet (Table 2): 3x3 conv 16 s2; 20 ShuffleNetV2 choice blocks "
      "of widths 64,160,320,640 x 4,4,8,4, each stage starting at stride 2; candidates "
      "choice_3/5/7 and choice_x; mid channels (out//2) x {0.2..1.6}; 1x1 conv 1024, GAP, "
      "dense. ReLU.")


@register("spos_cifar", 32)
def spos_cifar(resolution, width, num_classes):
  """The `spos_cifar` space: SPOS's choices at CIFAR-10 size. `resolution` in px, `width` the channel multiplier,
  `num_classes` (None: the space's default); the layout is in its `description`."""
  return _shufflenet_space(
      "spos_cifar", resolution, width, num_classes or 10, 1, (1, 2, 2, 2),
      "SPOS choices at CIFAR size: 3x3 conv 16 s1; 20 ShuffleNetV2 choice blocks of widths "
      "64,160,320,640 x 4,4,8,4 with first strides 1,2,2,2, so 32x32 input runs stages at "
      "32,16,8,4; candidates choice_3/5/7 and choice_x; mid channels (out//2) x {0.2..1.6}; "
      "1x1 conv 1024, GAP, dense 10. ReLU.")


@register("fbnet_cifar", 32)
def fbnet_cifar(resolution, width, num_classes):
  """The `fbnet_cifar` space: FBNet as HW-NAS-Bench encodes it (HELP's latencies). `resolution` in px, `width` the channel multiplier,
  `num_classes` (None: the space's default); the layout is in its `description`."""
  act = "relu"
  c = lambda x: S.make_divisible(x * width)
  blocks = _stages((resolution, resolution, c(16)), (16, 24, 32, 64, 112, 184, 352),
                   (1, 4, 4, 4, 4, 4, 1), (1, 1, 2, 2, 1, 2, 1), FBNET_OPS, c)
  n = len(blocks)
  named = {"all_k3_e1": (0,) * n, "all_k3_e3": (2,) * n, "all_k3_e6": (3,) * n,
           "all_k5_e6": (7,) * n, "all_skip": (8,) * n}
  return S.SearchSpace(
      name="fbnet_cifar", input_shape=(resolution, resolution, 3), stem=(c(16), 3, 1),
      blocks=tuple(blocks), head=S.Head(1504 if width <= 1 else c(1504), num_classes or 100),
      activation=act, references=_references(blocks, act, named),
      description="FBNet space in the HW-NAS-Bench encoding: 3x3 conv 16 s1; 22 layers in "
      "stages 16,24,32,64,112,184,352 x 1,4,4,4,4,4,1 (first strides 1,1,2,2,1,2,1); ops "
      "0..8 = k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip (1x1 conv "
      "where shapes differ); 1x1 conv 1504, GAP, dense 100. ReLU.")


@register("nasbench_macro", 32)
def nasbench_macro(resolution, width, num_classes):
  """The `nasbench_macro` space: NAS-Bench-Macro (Su et al., CVPR 2021), exactly. `resolution` in px, `width` the channel multiplier,
  `num_classes` (None: the space's default); the layout is in its `description`."""
  act = "relu"
  c = lambda x: S.make_divisible(x * width)
  blocks = _stages((resolution, resolution, c(32)), (64, 128, 256), (2, 3, 3), (2, 2, 2),
                   NASBENCH_MACRO_OPS, c)
  n = len(blocks)
  named = {"all_id": (0,) * n, "all_k3_e3": (1,) * n, "all_k5_e6": (2,) * n,
           # NAS-Bench-Macro's best on CIFAR-10 (93.13 %, code 22212220).
           "best_cifar10": (2, 2, 2, 1, 2, 2, 2, 0)}
  return S.SearchSpace(
      name="nasbench_macro", input_shape=(resolution, resolution, 3), stem=(c(32), 3, 1),
      blocks=tuple(blocks), head=S.Head(1280 if width <= 1 else c(1280), num_classes or 10),
      activation=act, references=_references(blocks, act, named),
      description="NAS-Bench-Macro (Su et al., CVPR 2021), 6,561 archs with trained CIFAR-10 "
      "accuracies: 3x3 conv 32 s1; 8 choice blocks in stages 64,128,256 x 2,3,3, each "
      "stage's first block stride 2; ops 0..2 = id (1x1 conv + BN where stride or width "
      "change), MBConv k3 e3, MBConv k5 e6 (residual where shapes match); 1x1 conv 1280, "
      "GAP, dense 10. ReLU. Archs also read as the benchmark's 8-digit codes ('22212220').")


@register("ofa_mbv3", 224)
def ofa_mbv3(resolution, width, num_classes):
  """The `ofa_mbv3` space: Once-for-All's MobileNetV3 space (Cai et al., ICLR 2020, Sec.
  3.1; its network `ofa_mbv3_d234_e346_k357_w1.2`, the Note10 table's), with elastic
  depth as skippable blocks. `resolution` in px, `width` the channel multiplier over
  OFA's width 1.2, `num_classes` (None: the space's default); the layout is in its
  `description`."""
  c = lambda x: S.make_divisible(x * width)
  stem_c = c(24)
  h = S.conv_out(resolution, 2)
  first = S.Block("first", (h, h, stem_c), (h, h, c(24)), 1,
                  (S.Op("k3_e1", S.MBCONV, kernel=3, expand=1),), activation="relu")
  blocks, shape = [first], first.out_shape
  # (width, first stride, activation, squeeze-and-excitation) of the five elastic stages.
  stages = ((32, 2, "relu", False), (48, 2, "relu", True), (96, 2, "hswish", False),
            (136, 1, "hswish", True), (192, 2, "hswish", True))
  for stage, (w, s, act, se) in enumerate(stages, 1):
    for j in range(4):  # depth {2, 3, 4}: the stage's 3rd and 4th blocks may be skipped
      stride = s if j == 0 else 1
      hh = S.conv_out(shape[0], stride)
      out = (hh, hh, c(w))
      ops = OFA_OPS + ((ZERO_OP,) if j >= 2 else ())
      blocks.append(S.Block(f"b{len(blocks) - 1:02d}", shape, out, stride, ops, stage=stage,
                            activation=act, se=se))
      shape = out
  n, names = len(blocks) - 1, [o.name for o in OFA_OPS]
  zero = len(OFA_OPS)  # the 'zero' op's index where a block has it
  named = {"all_k3_e3": (0,) * n, "all_k7_e6": (names.index("k7_e6"),) * n,
           # Depth 2 everywhere (the 3rd and 4th block of every stage skipped).
           "min_depth_k3_e3": tuple(zero if j % 4 >= 2 else 0 for j in range(n))}
  return S.SearchSpace(
      name="ofa_mbv3", input_shape=(resolution, resolution, 3), stem=(stem_c, 3, 2),
      blocks=tuple(blocks),
      head=S.Head(c(1152), num_classes or 1000, pooled_filters=c(1536)),
      activation="hswish", references=_references(blocks, "hswish", named),
      description="Once-for-All's MobileNetV3 space at width 1.2 (matches the Note10 "
      "lookup table): 3x3 conv 24 s2, hard swish; fixed MBConv e1 k3 -> 24 (ReLU); 20 "
      "choice blocks in 5 stages of 4, widths 32,48,96,136,192 (first strides "
      "2,2,2,1,2; ReLU in the first two stages, hard swish after; squeeze-and-excitation "
      "in stages 2, 4, 5), each MBConv k{3,5,7} x e{3,4,6}, plus 'zero' on a stage's 3rd "
      "and 4th block (elastic depth 2-4; OFA keeps a stage's first blocks, here either "
      "may be skipped); 1x1 conv 1152, GAP, 1x1 conv 1536 (hard swish, no BN), dense.")
