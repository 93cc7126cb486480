"""The ProxylessNAS over-parameterized network: fixed parts plus one MixedOp per choice block.

The sampled architecture is an input of the call (int tensors), so one traced
step serves every path. Called eagerly (`supernet_step="eager"`), only the sampled
paths run, each through a traced function shared by same-structure candidates
(`tfnas.layers.compiled`): no graph of the whole supernet is built. `inherit_child`
copies the chosen paths' weights into a plain child model built by `build_child`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfnas.layers.batchnorm import FusedBatchNorm
from tfnas.layers.compiled import CompiledCalls
from tfnas.layers.mixed import MixedOp
from tfnas.layers.from_spec import apply_graph, apply_pool, make_layer
from tfnas.models.child import build_child
from tfnas.spaces import Arch, SearchSpace


class ProxylessSupernet(keras.Model):
  """Stem, fixed blocks and MixedOps in the space's order, then the head.

  Example:
    >>> net = ProxylessSupernet(get_space("proxyless_cifar"))
    >>> logits = net(images, paths=tf.zeros([21], tf.int32), mode="single")

  Args:
    space: The (sized) search space.
    dropout: Dropout before the classifier.
    bn_momentum: BatchNormalization momentum.
  """

  def __init__(self, space: SearchSpace, dropout: float = 0.0, bn_momentum: float = 0.9,
               **kwargs):
    super().__init__(name=kwargs.pop("name", f"{space.name}_supernet"), **kwargs)
    self.space = space
    act = space.activation
    self.parts = []  # ("fixed", keras.Model) | ("mixed", MixedOp)
    inp = keras.Input(space.input_shape)
    x = inp
    for spec in space.stem_layers:
      x = make_layer(spec, "stem", act, bn_momentum, FusedBatchNorm)(x)
    self.stem = keras.Model(inp, x, name="stem")
    choice = space.choice_blocks
    for i, block in enumerate(space.blocks):
      if block in choice:
        self.parts.append(("mixed", MixedOp(block, act, bn_momentum, name=f"{block.name}_mixed")))
      else:
        b_in = keras.Input(block.in_shape)
        out = apply_graph(b_in, block.graph(block.ops[0], act), block.name, act, bn_momentum,
                          bn_class=FusedBatchNorm)
        self.parts.append(("fixed", keras.Model(b_in, out, name=block.name)))
    h_in = keras.Input(space.blocks[-1].out_shape)
    y = h_in
    for spec in space.head_layers:
      y = make_layer(spec, "head", act, bn_momentum, FusedBatchNorm)(y)
    y = apply_pool(y, space.pooled_layers, act)
    if dropout:
      y = keras.layers.Dropout(dropout, name="dropout")(y)
    y = keras.layers.Dense(space.head.num_classes, name="classifier")(y)
    self.head = keras.Model(h_in, y, name="head")
    self.mixed = [p for kind, p in self.parts if kind == "mixed"]
    self.compiled = CompiledCalls()  # one cache: same-structure candidates share traces
    for m in self.mixed:
      m.compiled = self.compiled
    # Every part is built above. Marked built, Keras' first call does not trace the
    # whole supernet symbolically to infer its shapes (26 s on proxyless_cifar).
    self.built = True

  @property
  def alphas(self) -> list:
    """The architecture parameters: one (N_j,) variable per choice block (Sec. 3.2)."""
    return [m.alpha for m in self.mixed]

  @property
  def weight_variables(self) -> list:
    """Every trainable variable but the alphas: what weight steps update."""
    ids = {id(a) for a in self.alphas}
    return [v for v in self.trainable_variables if id(v) not in ids]

  def call(self, images, paths, involved=None, mode: str = "single", training=None):
    """Logits (B, classes) of images (B, H, W, 3) through `paths` ((choice blocks,) int).

    `involved` ((choice blocks, K) int) and `mode`: see `MixedOp.call`."""
    eager = tf.executing_eagerly()
    fixed = (lambda model, x: self.compiled(model, x, bool(training))) if eager else (
        lambda model, x: model(x, training=training))
    if eager:  # Python ints: indexing an eager tensor costs ~1 ms a time on 2 cores
      paths = np.asarray(paths).tolist()
      involved = None if involved is None else np.asarray(involved)
    x = fixed(self.stem, images)
    j = 0
    for kind, part in self.parts:
      if kind == "fixed":
        x = fixed(part, x)
        continue
      inv = None if involved is None else involved[j]
      x = part(x, active=paths[j], involved=inv, mode=mode, training=training)
      j += 1
    return fixed(self.head, x)

  def probs(self) -> list:
    """softmax(alpha) of every choice block: (N_j,) float32 tensors (Eq. 2)."""
    return [m.probs() for m in self.mixed]

  def derive(self) -> Arch:
    """The most likely path of every block (argmax of alpha)."""
    return Arch.create(self.space, [int(tf.argmax(m.alpha)) for m in self.mixed])

  def inherit_child(self, arch: Arch, **kwargs) -> keras.Model:
    """A plain child model of `arch` holding the supernet's weights for it."""
    child = build_child(self.space, arch, **kwargs)
    sources = {l.name: l for l in self.stem.layers + self.head.layers}
    for kind, part in self.parts:
      if kind == "fixed":
        sources.update({l.name: l for l in part.layers})
    for m, k in zip(self.mixed, arch.ops):
      cand = m.candidates[k]
      if cand is None:
        continue
      prefix = f"{m.block.name}_{m.block.ops[k].name}_"
      for l in cand.layers:
        if l.name.startswith(prefix):
          sources[f"{m.block.name}_{l.name[len(prefix):]}"] = l
    for layer in child.layers:
      if layer.weights:
        if layer.name not in sources:
          raise KeyError(f"no supernet weights for child layer {layer.name!r}")
        layer.set_weights(sources[layer.name].get_weights())
    return child
