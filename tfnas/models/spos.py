"""The Single Path One-Shot supernet: one path per choice block, channels sliced.

Every layer is built once at its largest width from the space spec (one
candidate sub-graph per op of a choice block, at the block's largest mid-channel
scale). A call takes the architecture as two int tensors, `ops` and `chans`
(one entry per choice block): `tf.switch_case` runs the chosen op only, and the
chosen mid-channel count slices that op's weights, so one traced graph serves
every architecture. Called eagerly (`supernet_step="eager"`), only the chosen path of
each block runs, through a traced function of that path alone (built the first time the
path is chosen), so no graph of the whole supernet is built. BatchNorm runs in "train",
"eval" or "calib" mode (see
`tfnas.layers.sliced`); `recalibrate` gives a candidate exact BN statistics
over calibration images touching only its active path, without building a
model per candidate. `inherit_child` copies the (sliced) weights into a plain
child built by `build_child`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfnas.errors import TfnasError
from tfnas.layers.compiled import CompiledCalls
from tfnas.layers.sliced import SlicedBN, SlicedConv
from tfnas.layers.from_spec import (ChannelShuffle, ChannelSplit, SqueezeExcite,
                                    activation_layer)
from tfnas.models.child import build_child
from tfnas.spaces import SearchSpace, parse_arch
from tfnas.spaces.spec import IRF, MBCONV, Block, LayerSpec, Op


class _Chain:
  """The sliced layers of one chain of `LayerSpec`s; `mid_roles` take the sampled width."""

  def __init__(self, owner, layers: tuple[LayerSpec, ...], prefix: str, activation: str,
               bn_momentum: float, mid_roles=frozenset(), affine: bool = True):
    self.steps = []
    for spec in layers:
      name = f"{prefix}_{spec.role}"
      if spec.type in ("conv", "dwconv"):
        layer = SlicedConv(spec.out_shape[2], spec.kernel, spec.stride,
                           depthwise=spec.type == "dwconv", groups=spec.groups, name=name)
        layer.build((None,) + spec.in_shape)
      elif spec.type == "bn":
        layer = SlicedBN(bn_momentum, 1e-3, affine=affine, name=name)
        layer.build((None,) + spec.in_shape)
      elif spec.type == "act":
        layer = activation_layer(spec.activation or activation, name)
      elif spec.type == "se":
        layer = SqueezeExcite(spec.mid, name=name)
        layer.build((None,) + spec.in_shape)
      elif spec.type == "shuffle":
        layer = ChannelShuffle(spec.groups, name=name)
      else:
        raise AssertionError(spec.type)
      owner.sliced_layers.append(layer)
      self.steps.append((spec, layer, spec.role in mid_roles))

  def __call__(self, x, mid, bn_mode: str, training: bool):
    for spec, layer, is_mid in self.steps:
      if spec.type in ("conv", "dwconv"):
        x = layer(x, out_channels=mid if is_mid else None)
      elif spec.type == "bn":
        x = layer(x, mode=bn_mode)
      else:
        x = layer(x)
    return x


def _mid_widths(graphs: list, widest, narrowest) -> tuple[set, list | None]:
  """The conv roles whose width differs between the `widest` and `narrowest` spec of one
  op, and that width in each of `graphs`."""
  small = {l.role: l.out_shape[2] for l in narrowest.layers()}
  roles = {l.role for l in widest.layers() if l.type == "conv" and small[l.role] != l.out_shape[2]}
  role = next(iter(sorted(roles)), None)
  if role is None:
    return set(), None
  return roles, [next(l.out_shape[2] for l in g.layers() if l.role == role) for g in graphs]


def expansion_groups(block: Block) -> list[list[int]]:
  """Op indices of `block` grouped so that ops differing only in expansion ratio share
  one set of weights (MBConv / ungrouped IRF ops with an expand conv), widest first;
  every other op is a group of its own."""
  groups: dict = {}
  for k, op in enumerate(block.ops):
    shares = (op.kind == MBCONV and op.expand != 1) or (op.kind == IRF and op.groups == 1)
    key = (op.kind, op.kernel) if shares else ("own", k)
    groups.setdefault(key, []).append(k)
  return [sorted(g, key=lambda k: -block.ops[k].expand) for g in groups.values()]


class _Path:
  """One op of one block (or a fixed block): its `OpGraph` with sliced layers.

  `members` (ops of the block differing from `op` only in expansion ratio, `op`
  the widest) makes the path serve all of them: their expanded width is the
  leading slice of `op`'s, chosen by the `chan` index of the call.
  """

  def __init__(self, owner, block: Block, op: Op, prefix: str, activation: str,
               bn_momentum: float, members: tuple[Op, ...] = (), affine: bool = True):
    scales = block.mid_scales or (1.0,)
    graph = block.graph(op, activation, max(scales))
    self.graph = graph
    # The roles whose width follows the mid-channel choice: compare the spec at two widths.
    mid_roles, self.mids = set(), None
    if len(members) > 1:
      if len(scales) > 1:
        raise TfnasError(f"block {block.name}: shared expansion widths and mid-channel "
                         "scales cannot be combined")
      graphs = [block.graph(m, activation) for m in members]  # widest first
      mid_roles, self.mids = _mid_widths(graphs, graphs[0], graphs[-1])
    elif len(scales) > 1:  # indexed by the arch's scale index (the spec's order)
      mid_roles, self.mids = _mid_widths(
          [block.graph(op, activation, s) for s in block.mid_scales], graph,
          block.graph(op, activation, min(scales)))
    if mid_roles and any(l.type == "se" for l in graph.layers()):
      raise TfnasError(f"block {block.name}: a squeeze-and-excitation block has no channel "
                       "search (its SE weights would have to follow the sliced width); "
                       "search its ops without share_expansion or mid-channel scales")
    self.name = prefix
    roles = frozenset(mid_roles)
    self.main = _Chain(owner, graph.main, prefix, activation, bn_momentum, roles, affine)
    self.proj = None if graph.proj is None else _Chain(owner, graph.proj, prefix, activation,
                                                       bn_momentum, roles, affine)
    self.split = ChannelSplit(name=f"{prefix}_split") if graph.split else None

  def __call__(self, x, chan, bn_mode, training):
    mid = None if self.mids is None else tf.gather(tf.constant(self.mids, tf.int32), chan)
    g = self.graph
    if g.split:
      keep, x_main = self.split(x)
      return tf.concat([keep, self.main(x_main, mid, bn_mode, training)], -1)
    if g.proj is not None:
      return tf.concat([self.proj(x, mid, bn_mode, training),
                        self.main(x, mid, bn_mode, training)], -1)
    if not g.main:
      return x
    y = self.main(x, mid, bn_mode, training)
    return x + y if g.residual else y


class SPOSSupernet(keras.Model):
  """Single-path supernet over a space; the arch is an input of the call.

  Example:
    >>> net = SPOSSupernet(get_space("spos_cifar", width=0.25))
    >>> ops, chans = net.arch_tensors(arch)
    >>> logits = net(images, ops=ops, chans=chans, bn_mode="train")

  Args:
    space: The (sized) search space.
    dropout: Dropout before the classifier.
    bn_momentum: BatchNorm momentum (Keras convention).
    share_expansion: Channel search for MBConv/IRF spaces: ops that differ only in
      expansion ratio (k3_e3, k3_e6) share one kernel allocated at the largest
      expansion, each using the leading slice of its expanded width (as the
      mid-channel choice of ShuffleNet blocks). The arch encoding is unchanged.
    choice_bn_affine: Learn BN gamma/beta inside choice blocks. Off by default, as in
      the SPOS code: with paths switching every step they blow up and the supernet
      collapses (see `SlicedBN`). Stem, head and fixed blocks keep affine BN.
  """

  def __init__(self, space: SearchSpace, dropout: float = 0.0, bn_momentum: float = 0.9,
               share_expansion: bool = False, choice_bn_affine: bool = False, **kwargs):
    super().__init__(name=kwargs.pop("name", f"{space.name}_spos"), **kwargs)
    self.space = space
    act = space.activation
    self.sliced_layers = []
    self.stem = _Chain(self, space.stem_layers, "stem", act, bn_momentum)
    choice = space.choice_blocks
    # (block, is_choice, paths, path of each op, width index of each op or None)
    self.parts = []
    self.path_names = {}  # (block name, op index) -> layer-name prefix of its weights
    for block in space.blocks:
      if block not in choice:
        paths = [_Path(self, block, block.ops[0], block.name, act, bn_momentum)]
        self.parts.append((block, False, paths, None, None))
        continue
      groups = (expansion_groups(block) if share_expansion
                else [[k] for k in range(len(block.ops))])
      paths, path_of, member_of = [], [0] * len(block.ops), [0] * len(block.ops)
      for g in groups:
        op = block.ops[g[0]]
        name = (f"{block.name}_{op.name}" if len(g) == 1
                else f"{block.name}_k{op.kernel}_shared")
        for i, k in enumerate(g):
          path_of[k], member_of[k] = len(paths), i
          self.path_names[(block.name, k)] = name
        paths.append(_Path(self, block, op, name, act, bn_momentum,
                           tuple(block.ops[k] for k in g), choice_bn_affine))
      shared = any(len(g) > 1 for g in groups)
      self.parts.append((block, True, paths, tuple(path_of),
                         tuple(member_of) if shared else None))
    self.head_chain = _Chain(self, space.head_layers, "head", act, bn_momentum)
    self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
    self.pooled = []  # the pooled 1x1 conv as the child has it (`apply_pool`): Dense, act
    for spec in space.pooled_layers:
      if spec.type == "conv":
        bound = 1.0 / spec.in_shape[2] ** 0.5  # PyTorch's Linear start, as the classifier
        layer = keras.layers.Dense(
            spec.out_shape[2], use_bias=False, name=f"head_{spec.role}",
            kernel_initializer=keras.initializers.RandomUniform(-bound, bound))
        layer.build((None, spec.in_shape[2]))
      else:
        layer = activation_layer(spec.activation or act, f"head_{spec.role}")
      self.pooled.append(layer)
    self.dropout = keras.layers.Dropout(dropout, name="dropout") if dropout else None
    # The classifier starts as PyTorch's Linear (uniform in +-1/sqrt(fan_in)), as the
    # convs (see `SlicedConv`): Keras' Glorot start is ~2.4x larger.
    bound = 1.0 / space.feature_channels ** 0.5
    self.classifier = keras.layers.Dense(
        space.head.num_classes, name="classifier",
        kernel_initializer=keras.initializers.RandomUniform(-bound, bound))
    self.classifier.build((None, space.feature_channels))
    self.bns = [l for l in self.sliced_layers if isinstance(l, SlicedBN)]
    self.num_choice = len(choice)
    self.compiled = CompiledCalls()  # traced single paths for eager calls
    self.built = True  # every layer is built above: Keras traces no symbolic first call

  def arch_tensors(self, arch) -> tuple[tf.Tensor, tf.Tensor]:
    """(ops, chans) int32 tensors for an `Arch` (chans all 0 without channel choices)."""
    arch = parse_arch(self.space, arch)
    chans = arch.channels or (0,) * len(arch.ops)
    return tf.constant(arch.ops, tf.int32), tf.constant(chans, tf.int32)

  def call(self, images, ops, chans, bn_mode: str = "eval", training=None):
    """Logits (B, classes) of images (B, H, W, 3) for the arch `ops`, `chans` ((choice
    blocks,) int each); `bn_mode` "train", "eval" or "calib" (see `SlicedBN`)."""
    training = bool(training) if training is not None else bn_mode == "train"
    if tf.executing_eagerly():
      return self._call_eager(images, ops, chans, bn_mode, training)
    x = self.stem(images, None, bn_mode, training)
    j = 0
    for block, is_choice, paths, path_of, member_of in self.parts:
      if not is_choice:
        x = paths[0](x, tf.constant(0), bn_mode, training)
        continue
      if member_of is None:
        chan, index = chans[j], ops[j]
      else:  # shared expansion widths: the op picks the path and the width
        chan = tf.gather(tf.constant(member_of, tf.int32), ops[j])
        index = tf.gather(tf.constant(path_of, tf.int32), ops[j])
      branches = [(lambda p=p, x=x, chan=chan: p(x, chan, bn_mode, training)) for p in paths]
      x = tf.switch_case(index, branches)
      x.set_shape((None,) + block.out_shape)
      j += 1
    return self._head(self.head_chain(x, None, bn_mode, training), training)

  def _head(self, x, training):
    x = self.pool(x)
    for layer in self.pooled:
      x = layer(x)
    if self.dropout is not None:
      x = self.dropout(x, training=training)
    return self.classifier(x)

  def _call_eager(self, images, ops, chans, bn_mode, training):
    fn = lambda key, body: self.compiled.get((key, bn_mode, training), body)
    zero = tf.constant(0)
    x = fn("stem", lambda x: self.stem(x, None, bn_mode, training))(images)
    ops, chans, j = [int(k) for k in ops], [int(k) for k in chans], 0
    for i, (block, is_choice, paths, path_of, member_of) in enumerate(self.parts):
      if not is_choice:
        x = fn(i, lambda x, c, p=paths[0]: p(x, c, bn_mode, training))(x, zero)
        continue
      index = ops[j] if path_of is None else path_of[ops[j]]
      chan = chans[j] if member_of is None else member_of[ops[j]]
      x = fn((i, index), lambda x, c, p=paths[index]: p(x, c, bn_mode, training))(
          x, tf.constant(chan))
      j += 1
    return fn("head", lambda x: self._head(
        self.head_chain(x, None, bn_mode, training), training))(x)

  # --- BN recalibration ---------------------------------------------------------------
  def recalibrate(self, batches, ops, chans, step_fn=None, edges=None):
    """Exact BN statistics for the arch (`ops`, `chans` tensors) over `batches`
    (an iterable of image batches); only the active path's BN layers change.

    `step_fn(images, ops, chans)` is the calibration forward pass (see `calibration_fn`;
    the default is the same). `edges` is the
    (begin, end) pair of `calibration_edges`: zeroing every accumulator and turning the
    sums into moving statistics as one graph call each, instead of ~10 eager ops per BN
    layer (hundreds of layers, mirrored under a multi-replica strategy: seconds per
    candidate). Without it the same updates run eagerly.

    Raises:
      TfnasError: `batches` is empty.
    """
    begin, end = edges or self._calibration_edges_eager()
    begin()
    fn = step_fn or (lambda images, ops, chans: self(images, ops=ops, chans=chans,
                                                      bn_mode="calib", training=False))
    n = 0
    for images in batches:
      fn(images, ops, chans)
      n += 1
    if not n:
      raise TfnasError("BN recalibration got no images")
    end()

  def _calibration_edges_eager(self):
    def begin():
      for bn in self.bns:
        bn.start_calibration()

    def end():
      for bn in self.bns:
        bn.finish_calibration()
    return begin, end

  def calibration_edges(self):
    """(begin, end): `start_calibration` and `finish_calibration` of every BN layer, each
    traced into one `tf.function` (see `recalibrate`)."""
    begin, end = self._calibration_edges_eager()
    return tf.function(begin), tf.function(end)

  def calibration_fn(self):
    """The calibration forward pass `calib(images, ops, chans)` (returns None): every BN
    on the path accumulates its batch sums (SPOS paper, Sec. 3.4). Called eagerly, each
    path runs through its own traced function; wrapped in a `tf.function`, it is one
    graph for every arch."""
    def calib(images, ops, chans):
      self(images, ops=ops, chans=chans, bn_mode="calib", training=False)
    return calib

  # --- child ------------------------------------------------------------------------------
  def _layers_by_name(self) -> dict:
    return {**{l.name: l for l in self.sliced_layers + self.pooled},
            "classifier": self.classifier}

  def source_weights(self, arch, layer_name: str, by_name: dict | None = None) -> list:
    """The supernet weights behind the child layer `layer_name` of `arch` (an `Arch`), in
    the child layer's weight order; the child takes their leading slices. `by_name`: the
    supernet's layers by name, when a caller looks up many layers."""
    by_name = by_name or self._layers_by_name()
    source = by_name.get(layer_name)
    block = layer_name.split("_", 1)[0]
    choice = [b.name for b in self.space.choice_blocks]
    if source is None and block in choice:
      prefix = self.path_names[(block, arch.ops[choice.index(block)])]
      source = by_name.get(f"{prefix}_{layer_name.split('_', 1)[1]}")
    if source is None:
      raise KeyError(f"no supernet weights for child layer {layer_name!r}")
    return source.keras_weights if isinstance(source, SlicedBN) else source.weights

  def inherit_child(self, arch, **kwargs) -> keras.Model:
    """A plain child of `arch` holding the supernet's weights (leading slices) for it."""
    arch = parse_arch(self.space, arch)
    child = build_child(self.space, arch, **kwargs)
    by_name = self._layers_by_name()
    for layer in child.layers:
      if not layer.weights:
        continue
      weights = self.source_weights(arch, layer.name, by_name)
      values = []
      for src, dst in zip(weights, layer.weights):
        v = np.asarray(src.numpy())
        values.append(v[tuple(slice(0, d) for d in dst.shape)])
      layer.set_weights(values)
    return child
