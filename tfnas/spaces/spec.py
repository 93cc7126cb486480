"""Search spaces as data: frozen, typed specs that every other reader walks.

A `SearchSpace` is a stem (fixed layers), a tuple of `Block`s (each with its
shapes, stride and candidate `Op`s; a block with one candidate is fixed) and a
head. The child builder, the supernet, the FLOPs/params counter, latency
features and lookup-table keys all derive from `Block.layers(op)`, so there is
no second hand-typed architecture table anywhere.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

Shape = tuple[int, int, int]  # (height, width, channels)

# Op kinds. Each kind's topology is fixed here; the numbers live in Op/Block.
MBCONV = "mbconv"  # inverted residual: [1x1 expand] -> kxk depthwise -> 1x1 project
ZERO = "zero"  # block skipped: identity shortcut only (shapes must match)
SKIP = "skip"  # FBNet skip: identity, or 1x1 conv + BN where shapes differ
SHUFFLE = "shuffle"  # ShuffleNetV2 unit with a kxk depthwise conv
XCEPTION = "xception"  # ShuffleNetV2 unit whose branch is three 3x3 dw-separable convs
IRF = "irf"  # FBNet inverted residual: 1x1 (grouped) -> [shuffle] -> kxk dw -> 1x1 (grouped)

OP_KINDS = (MBCONV, ZERO, SKIP, SHUFFLE, XCEPTION, IRF)
# Activations: ReLU, ReLU6, and MobileNetV3's hard swish x * relu6(x + 3) / 6 (Howard et
# al., ICCV 2019, Eq. 2).
ACTIVATIONS = ("relu", "relu6", "hswish")
SE_REDUCTION = 4  # squeeze-and-excitation: mid channels / 4, as MobileNetV3 and OFA


def make_divisible(value: float, divisor: int = 8) -> int:
  """Rounds channels the MobileNet way (never below 90% of `value`)."""
  new = max(divisor, int(value + divisor / 2) // divisor * divisor)
  if new < 0.9 * value:
    new += divisor
  return new


def conv_out(size: int, stride: int) -> int:
  """Spatial size after a 'same'-padded conv with `stride`."""
  return math.ceil(size / stride)


@dataclasses.dataclass(frozen=True)
class Op:
  """One candidate operation of a choice block.

  Attributes:
    name: Canonical name used in arch strings and recipes, e.g. "k3_e6".
    kind: One of OP_KINDS.
    kernel: Depthwise kernel size (0 where not applicable).
    expand: Expansion ratio of MBConv/IRF ops (0 where not applicable).
    groups: Groups of the 1x1 convs of IRF ops.
  """
  name: str
  kind: str
  kernel: int = 0
  expand: float = 0
  groups: int = 1

  def __post_init__(self):
    if self.kind not in OP_KINDS:
      raise ValueError(f"op {self.name!r}: kind {self.kind!r} is not one of {OP_KINDS}")


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """One stock Keras layer as the spec sees it (enough to count and to build).

  Attributes:
    role: Name suffix, unique within its block, e.g. "expand_conv".
    type: "conv", "dwconv", "bn", "act", "shuffle" (channel shuffle, no weights),
      "se" (squeeze-and-excitation: global pool, 1x1 conv to `mid` + bias, ReLU, 1x1 conv
      back + bias, hard sigmoid, times the input; MobileNetV3 Sec. 5.3, OFA's SELayer).
    in_shape: Input shape (h, w, c).
    out_shape: Output shape (h, w, c).
    kernel: Kernel size for conv/dwconv.
    stride: Stride for conv/dwconv.
    groups: Groups for conv.
    activation: The function of an "act" layer, one of ACTIVATIONS.
    mid: The squeezed channels of an "se" layer.
  """
  role: str
  type: str
  in_shape: Shape
  out_shape: Shape
  kernel: int = 1
  stride: int = 1
  groups: int = 1
  activation: str = ""
  mid: int = 0

  @property
  def params(self) -> int:
    """Parameters of this layer as Keras' `count_params` counts them: BatchNorm's four
    vectors (gamma, beta, moving mean and variance), convs without bias."""
    cin, cout = self.in_shape[2], self.out_shape[2]
    if self.type == "conv":
      return self.kernel * self.kernel * (cin // self.groups) * cout
    if self.type == "dwconv":
      return self.kernel * self.kernel * cin
    if self.type == "bn":
      return 4 * cout  # gamma, beta, moving mean, moving variance
    if self.type == "se":
      return 2 * cin * self.mid + self.mid + cin  # two 1x1 convs with biases
    return 0

  @property
  def trainable_params(self) -> int:
    """Parameters a framework trains (BatchNorm's scale and offset, not its moving
    statistics): what PyTorch's `parameters()` and Keras's `trainable_weights` count."""
    return 2 * self.out_shape[2] if self.type == "bn" else self.params

  @property
  def macs(self) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convs only; BN, activations
    and adds count 0, as NAS-Bench-Macro's `flops` and the papers' MACs do)."""
    h, w, cout = self.out_shape
    if self.type == "conv":
      return h * w * self.kernel * self.kernel * (self.in_shape[2] // self.groups) * cout
    if self.type == "dwconv":
      return h * w * self.kernel * self.kernel * cout
    if self.type == "se":
      return 2 * cout * self.mid  # its two 1x1 convs run on the pooled 1x1 map
    return 0


@dataclasses.dataclass(frozen=True)
class OpGraph:
  """The topology of one op applied in one block.

  `out = concat(proj(x), main(x))` when `proj` is given (ShuffleNet stride-2
  unit); `out = concat(x_even, main(x_odd))` when `split` (ShuffleNet stride-1
  unit, even/odd channel split as in the SPOS code); `out = x + main(x)` when
  `residual`; otherwise `out = main(x)`. An empty `main` with `residual` is the
  identity (the `zero` op).
  """
  main: tuple[LayerSpec, ...]
  proj: tuple[LayerSpec, ...] | None = None
  split: bool = False
  residual: bool = False

  def layers(self) -> Iterator[LayerSpec]:
    """Every layer of the op: the shortcut projection's (if any), then the main path's."""
    yield from self.proj or ()
    yield from self.main


class _Chain:
  """Helper that threads shapes through a sequence of layer specs."""

  def __init__(self, shape: Shape, activation: str):
    self.shape = shape
    self.activation = activation
    self.layers: list[LayerSpec] = []

  def conv(self, role, filters, kernel=1, stride=1, groups=1, bn=True, act=True):
    h, w, _ = self.shape
    out = (conv_out(h, stride), conv_out(w, stride), filters)
    self.layers.append(LayerSpec(f"{role}_conv", "conv", self.shape, out, kernel, stride, groups))
    self.shape = out
    self._post(role, bn, act)
    return self

  def dw(self, role, kernel, stride=1, bn=True, act=True):
    h, w, c = self.shape
    out = (conv_out(h, stride), conv_out(w, stride), c)
    self.layers.append(LayerSpec(f"{role}_conv", "dwconv", self.shape, out, kernel, stride))
    self.shape = out
    self._post(role, bn, act)
    return self

  def se(self, role, mid):
    self.layers.append(LayerSpec(role, "se", self.shape, self.shape, mid=mid))
    return self

  def shuffle(self, role, groups):
    self.layers.append(LayerSpec(role, "shuffle", self.shape, self.shape, groups=groups))
    return self

  def _post(self, role, bn, act):
    if bn:
      self.layers.append(LayerSpec(f"{role}_bn", "bn", self.shape, self.shape))
    if act:
      self.layers.append(LayerSpec(f"{role}_{self.activation}", "act", self.shape, self.shape,
                                   activation=self.activation))


@dataclasses.dataclass(frozen=True)
class Block:
  """A choice block (or a fixed block when it has a single candidate).

  Attributes:
    name: Layer-name prefix, e.g. "b03". Every Keras layer of the block is
      named "<name>_<role>".
    in_shape: Input (h, w, c).
    out_shape: Output (h, w, c).
    stride: Stride of the block.
    ops: Candidate ops; index into this tuple is the arch's choice.
    mid_scales: Mid-channel multipliers the block may choose from (SPOS
      channel search); empty when the block has no channel choice.
    stage: Stage index, for display and grouping.
    activation: This block's activation ("": the space's), one of ACTIVATIONS;
      MobileNetV3 uses ReLU in early stages and hard swish later.
    se: Whether its MBConv ops squeeze-and-excite the depthwise output (mid channels
      // SE_REDUCTION, rounded as `make_divisible`) before the projection.
  """
  name: str
  in_shape: Shape
  out_shape: Shape
  stride: int
  ops: tuple[Op, ...]
  mid_scales: tuple[float, ...] = ()
  stage: int = 0
  activation: str = ""
  se: bool = False

  def __post_init__(self):
    if self.activation and self.activation not in ACTIVATIONS:
      raise ValueError(f"block {self.name}: activation {self.activation!r} is not one of "
                       f"{ACTIVATIONS}")

  @property
  def same_shape(self) -> bool:
    """Whether input and output shapes match at stride 1 (a residual or `zero` is legal)."""
    return self.in_shape == self.out_shape and self.stride == 1

  @property
  def op_names(self) -> tuple[str, ...]:
    """The candidates' names, in op-index order."""
    return tuple(op.name for op in self.ops)

  def op_index(self, name: str) -> int:
    """The index of candidate `name`. Raises KeyError for a name the block lacks."""
    try:
      return self.op_names.index(name)
    except ValueError:
      raise KeyError(name) from None

  def to_config(self) -> dict:
    """This block as JSON-serializable data (a layer's `get_config` stores it);
    `Block.from_config` rebuilds an equal block."""
    return {"name": self.name, "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape), "stride": self.stride,
            "ops": [dataclasses.asdict(op) for op in self.ops],
            "mid_scales": list(self.mid_scales), "stage": self.stage,
            "activation": self.activation, "se": self.se}

  @classmethod
  def from_config(cls, config: dict) -> "Block":
    """The block `to_config` described. Raises ValueError for an op of unknown kind."""
    return cls(config["name"], tuple(config["in_shape"]), tuple(config["out_shape"]),
               int(config["stride"]), tuple(Op(**op) for op in config["ops"]),
               tuple(config.get("mid_scales", ())), int(config.get("stage", 0)),
               config.get("activation", ""), bool(config.get("se", False)))

  def graph(self, op: Op, activation: str, mid_scale: float = 1.0) -> OpGraph:
    """The layers and topology of `op` in this block; `activation` is the space's (the
    block's own `activation`, when set, replaces it)."""
    activation = self.activation or activation
    cin, cout = self.in_shape[2], self.out_shape[2]
    if op.kind == ZERO:
      if not self.same_shape:
        raise ValueError(f"block {self.name}: 'zero' needs equal input/output shapes")
      return OpGraph(main=(), residual=True)
    if op.kind == MBCONV:
      mid = make_divisible(cin * op.expand)
      ch = _Chain(self.in_shape, activation)
      if op.expand != 1:
        ch.conv("expand", mid)
      ch.dw("dw", op.kernel, self.stride)
      if self.se:
        ch.se("se", make_divisible(mid // SE_REDUCTION))
      ch.conv("project", cout, act=False)
      return OpGraph(main=tuple(ch.layers), residual=self.same_shape)
    if op.kind == IRF:
      mid = int(cin * op.expand)
      mid -= mid % op.groups
      ch = _Chain(self.in_shape, activation)
      ch.conv("expand", mid, groups=op.groups)
      if op.groups > 1:
        ch.shuffle("shuffle", op.groups)
      ch.dw("dw", op.kernel, self.stride).conv("project", cout, groups=op.groups, act=False)
      return OpGraph(main=tuple(ch.layers), residual=self.same_shape)
    if op.kind == SKIP:
      if self.same_shape:
        return OpGraph(main=(), residual=True)
      ch = _Chain(self.in_shape, activation).conv("skip", cout, stride=self.stride, act=False)
      return OpGraph(main=tuple(ch.layers))
    if op.kind in (SHUFFLE, XCEPTION):
      return self._shuffle_graph(op, activation, mid_scale)
    raise AssertionError(op.kind)

  def _shuffle_graph(self, op: Op, activation: str, mid_scale: float) -> OpGraph:
    cin, cout = self.in_shape[2], self.out_shape[2]
    split = self.same_shape
    if split and cin % 2:
      raise ValueError(f"block {self.name}: channel split needs even channels, got {cin}")
    branch_in = cin // 2 if split else cin
    branch_out = cout - branch_in
    # SPOS: mid channels = (block output // 2) * scale.
    mid = max(1, int(round(cout // 2 * mid_scale)))
    h, w, _ = self.in_shape
    ch = _Chain((h, w, branch_in), activation)
    if op.kind == SHUFFLE:
      ch.conv("pw1", mid).dw("dw", op.kernel, self.stride, act=False).conv("pw2", branch_out)
    else:
      ch.dw("dw1", 3, self.stride, act=False).conv("pw1", mid)
      ch.dw("dw2", 3, act=False).conv("pw2", mid)
      ch.dw("dw3", 3, act=False).conv("pw3", branch_out)
    proj = None
    if not split:
      pc = _Chain(self.in_shape, activation)
      pc.dw("proj_dw", op.kernel if op.kind == SHUFFLE else 3, self.stride, act=False)
      pc.conv("proj_pw", branch_in)
      proj = tuple(pc.layers)
    return OpGraph(main=tuple(ch.layers), proj=proj, split=split)


@dataclasses.dataclass(frozen=True)
class Head:
  """Final 1x1 conv (if `conv_filters`), global average pool, a 1x1 conv of the pooled
  features to `pooled_filters` with the space's activation and no BatchNorm (if set:
  MobileNetV3's last stage, OFA's "feature mix" layer), dropout, dense."""
  conv_filters: int
  num_classes: int
  dropout: float = 0.0
  pooled_filters: int = 0


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """A search space: stem conv, fixed/choice blocks, head.

  Attributes:
    name: Registry name.
    input_shape: (h, w, 3).
    stem: Stem conv: (filters, kernel, stride).
    blocks: All blocks in order; blocks with one op are fixed and take no
      arch choice.
    head: The classifier head.
    activation: One of ACTIVATIONS: the stem's, the head's and every block's without
      its own.
    references: Named reference architectures as op-index tuples over the
      choice blocks.
    description: One paragraph on the layout, shown by `tfnas.bin.spaces`.
  """
  name: str
  input_shape: Shape
  stem: tuple[int, int, int]
  blocks: tuple[Block, ...]
  head: Head
  activation: str = "relu6"
  references: tuple[tuple[str, tuple[int, ...]], ...] = ()
  description: str = ""

  @property
  def choice_blocks(self) -> tuple[Block, ...]:
    """The blocks with a choice (of op or mid-channel width), in order: what an `Arch`
    indexes."""
    return tuple(b for b in self.blocks if len(b.ops) > 1 or b.mid_scales)

  @property
  def fixed_blocks(self) -> tuple[Block, ...]:
    """The blocks without a choice (one op, no channel choice)."""
    return tuple(b for b in self.blocks if not (len(b.ops) > 1 or b.mid_scales))

  @property
  def has_channel_choices(self) -> bool:
    """Whether some choice block also chooses its mid-channel width (SPOS's spaces)."""
    return any(b.mid_scales for b in self.choice_blocks)

  @property
  def stem_layers(self) -> tuple[LayerSpec, ...]:
    """The stem's conv, BN (and activation) specs, shapes threaded from the input."""
    filters, kernel, stride = self.stem
    return tuple(_Chain(self.input_shape, self.activation).conv("stem", filters, kernel, stride).layers)

  @property
  def head_layers(self) -> tuple[LayerSpec, ...]:
    """The head's 1x1 conv, BN and activation specs after the last block (() when the
    head has no conv); pooling and the classifier are not `LayerSpec`s."""
    shape = self.blocks[-1].out_shape
    if not self.head.conv_filters:
      return ()
    return tuple(_Chain(shape, self.activation).conv("head", self.head.conv_filters).layers)

  @property
  def pooled_layers(self) -> tuple[LayerSpec, ...]:
    """The 1x1 conv (no BatchNorm, no bias) and activation on the pooled (1, 1, c)
    features (`Head.pooled_filters`; () without), named "mix_conv", "mix_<act>"."""
    if not self.head.pooled_filters:
      return ()
    c = self.head.conv_filters or self.blocks[-1].out_shape[2]
    return tuple(_Chain((1, 1, c), self.activation)
                 .conv("mix", self.head.pooled_filters, bn=False).layers)

  @property
  def feature_channels(self) -> int:
    """Channels entering the classifier: the pooled conv's, else the head conv's, else
    the last block's."""
    return (self.head.pooled_filters or self.head.conv_filters
            or self.blocks[-1].out_shape[2])

  def reference(self, name: str) -> tuple[int, ...]:
    """The op indices (one per choice block) of reference arch `name`. Raises KeyError
    naming the known references."""
    refs = dict(self.references)
    if name not in refs:
      raise KeyError(f"space {self.name!r} has no reference arch {name!r}; known: {sorted(refs)}")
    return refs[name]

  @property
  def num_choices(self) -> tuple[int, ...]:
    """Number of candidate ops of each choice block."""
    return tuple(len(b.ops) for b in self.choice_blocks)

  @property
  def size(self) -> int:
    """Number of architectures (op choices times channel choices)."""
    n = 1
    for b in self.choice_blocks:
      n *= len(b.ops) * max(1, len(b.mid_scales))
    return n
